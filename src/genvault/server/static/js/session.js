// Signed in by the session cookie (GENVAULT_AUTH=api_key): every request the page scripts make to
// this server carries the session's CSRF token, which the server checks (genvault/server/sessions.py);
// every POST form gets it as a field if it lacks one. A 401 from the API means the session ended
// (signed out elsewhere, revoked, expired): go to the sign-in page, and come back here after.
// A classic script, run before the page's modules, so their fetch() calls are covered.
(() => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (!meta) return;
  const token = meta.content;
  const nativeFetch = window.fetch.bind(window);

  const toLogin = () => {
    const here = location.pathname + location.search;
    location.assign(`/login?next=${encodeURIComponent(here)}`);
  };

  window.fetch = async (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input), location.href);
    if (url.origin !== location.origin) return nativeFetch(input, init);
    const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
    if (!headers.has("X-CSRF-Token")) headers.set("X-CSRF-Token", token);
    const response = await nativeFetch(input, { ...init, headers });
    if (response.status === 401 && url.pathname.startsWith("/api/")) toLogin();
    return response;
  };

  document.addEventListener(
    "submit",
    (event) => {
      const form = event.target;
      if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") return;
      if (form.elements.namedItem("csrf_token")) return;
      const field = document.createElement("input");
      field.type = "hidden";
      field.name = "csrf_token";
      field.value = token;
      form.append(field);
    },
    true,
  );
})();
