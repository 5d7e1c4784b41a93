"""Feedback: a user's thumbs up (+1) or down (-1), with an optional comment, on one of their own
generations or on an assistant message of one of their own chats.

One rating per (user, target): rating again replaces it, `clear_*` removes it. Only the owner
rates: a reader of a chat shared by link or publicly gets the same `NotFound` as any other write
there (shared chats are read-only), so every rating is the owner's data, counted in the owner's
usage, exported with it and erased with it (the `feedback` table carries `user_id`).
"""

from genvault.feedback._service import MAX_COMMENT, FeedbackService, Rating, RatingValue

__all__ = ["MAX_COMMENT", "FeedbackService", "Rating", "RatingValue"]
