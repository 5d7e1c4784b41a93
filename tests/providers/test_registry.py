"""parse_model_name and ProviderRegistry: names to provider instances, with fixable errors."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from genvault.errors import InvalidRequest, ProviderError
from genvault.providers.anthropic import AnthropicProvider
from genvault.providers.base import ModelRequest
from genvault.providers.openai import OpenAIProvider
from genvault.providers.registry import ProviderRegistry, parse_model_name
from genvault.providers.testmodel import TestProvider
from genvault.settings import CompatibleProvider, Settings


class TestParseModelName:
    @pytest.mark.parametrize(
        ("name", "parsed"),
        [
            ("openai/gpt-4o-mini", ("openai", "gpt-4o-mini")),
            ("offline/test-model", ("offline", "test-model")),
            ("ollama/llama3.2:1b", ("ollama", "llama3.2:1b")),
            ("openrouter/anthropic/claude-sonnet-4.5", ("openrouter", "anthropic/claude-sonnet-4.5")),
        ],
    )
    def test_splits_at_the_first_slash(self, name, parsed):
        assert parse_model_name(name) == parsed

    @pytest.mark.parametrize(
        ("name", "problem"),
        [
            ("gpt-4o", "names no provider"),
            ("/x", "nothing before the '/'"),
            ("openai/", "no model after the '/'"),
            ("", "empty"),
            ("   ", "empty"),
            (" openai/gpt-4o", "whitespace"),
            ("openai/gpt 4o", "whitespace"),
            ("open ai/gpt-4o", "whitespace"),
            ("op!en/gpt", "letters, digits"),
        ],
    )
    def test_malformed_names_say_what_is_wrong_and_show_the_expected_form(self, name, problem):
        with pytest.raises(InvalidRequest) as caught:
            parse_model_name(name)

        assert problem in caught.value.message
        assert "provider/model" in caught.value.message


@given(st.text(alphabet=st.sampled_from("ab/\t\n \u00a0\u2003\u3000\x1c\x85\u200b"), min_size=1, max_size=8))
def test_a_name_with_whitespace_is_refused_as_by_each_character(name: str) -> None:
    """The whitespace check (`str.split`) refuses exactly the names with a character for which
    `str.isspace` holds, with the same message."""
    has_space = bool(name.strip()) and any(char.isspace() for char in name)
    if has_space:
        with pytest.raises(InvalidRequest, match="contains whitespace"):
            parse_model_name(name)
        return
    message = ""
    try:
        parse_model_name(name)
    except InvalidRequest as exc:
        message = exc.message
    assert "whitespace" not in message


def registry(environ: dict[str, str] | None = None, **settings: object) -> ProviderRegistry:
    return ProviderRegistry(Settings(**settings), environ=environ or {})  # type: ignore[arg-type]


class TestResolve:
    def test_offline_test_model_is_built_in_at_the_configured_speed(self):
        provider, model = registry(test_model_tps=0).resolve("offline/test-model")

        assert isinstance(provider, TestProvider)
        assert provider.tokens_per_second == 0
        assert model == "test-model"

    def test_the_offline_provider_has_only_the_test_model(self):
        with pytest.raises(InvalidRequest, match="offline/test-model"):
            registry().resolve("offline/gpt-4o")

    def test_instances_are_cached(self):
        providers = registry()

        assert providers.resolve("offline/test-model")[0] is providers.resolve("offline/test-model")[0]

    def test_openai_needs_its_api_key_and_says_which_variable(self):
        with pytest.raises(InvalidRequest, match="OPENAI_API_KEY"):
            registry().resolve("openai/gpt-4o-mini")

    def test_anthropic_needs_its_api_key_and_says_which_variable(self):
        with pytest.raises(InvalidRequest, match="ANTHROPIC_API_KEY"):
            registry({"OPENAI_API_KEY": "sk-x"}).resolve("anthropic/claude-sonnet-4-6")

    def test_openai_with_a_key_resolves_to_the_bare_model(self):
        provider, model = registry({"OPENAI_API_KEY": "sk-x"}).resolve("openai/gpt-4o-mini")

        assert isinstance(provider, OpenAIProvider)
        assert provider.name == "openai"
        assert model == "gpt-4o-mini"

    def test_anthropic_with_a_key_resolves(self):
        provider, model = registry({"ANTHROPIC_API_KEY": "k"}).resolve("anthropic/claude-sonnet-4-6")

        assert isinstance(provider, AnthropicProvider)
        assert model == "claude-sonnet-4-6"

    def test_unknown_provider_lists_the_known_ones_and_how_to_add_one(self):
        with pytest.raises(InvalidRequest) as caught:
            registry().resolve("mistral/large")

        message = caught.value.message
        assert "'mistral'" in message
        assert "anthropic, offline, openai" in message
        assert "GENVAULT_COMPATIBLE_PROVIDERS" in message

    def test_compatible_provider_is_an_openai_provider_under_its_own_name(self):
        providers = registry(compatible_providers={"ollama": CompatibleProvider(base_url="http://localhost:11434/v1")})

        provider, model = providers.resolve("ollama/llama3.2:1b")

        assert isinstance(provider, OpenAIProvider)
        assert provider.name == "ollama"
        assert model == "llama3.2:1b"
        assert "ollama" in providers.names

    def test_compatible_provider_with_a_key_variable_needs_it_set(self):
        settings = {
            "compatible_providers": {"vllm": CompatibleProvider(base_url="http://gpu:8000/v1", api_key_env="VLLM_KEY")}
        }

        with pytest.raises(InvalidRequest, match="VLLM_KEY"):
            registry(**settings).resolve("vllm/qwen")
        provider, _ = registry({"VLLM_KEY": "secret"}, **settings).resolve("vllm/qwen")
        assert provider.name == "vllm"

    def test_injected_providers_win_and_may_use_any_name(self):
        scripted = TestProvider(tokens_per_second=0, name="scripted")
        override = TestProvider(tokens_per_second=0, name="openai")
        providers = ProviderRegistry(Settings(), providers={"scripted": scripted, "openai": override}, environ={})

        assert providers.resolve("scripted/anything") == (scripted, "anything")
        assert providers.resolve("openai/gpt-4o") == (override, "gpt-4o")


class TestWiring:
    async def test_openai_gets_base_url_from_settings_and_the_shared_http_client(self):
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(401, json={"error": {"message": "nope"}}, headers={"x-should-retry": "false"})

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            providers = ProviderRegistry(
                Settings(openai_base_url="https://proxy.example/v1"),
                http_client=client,
                environ={"OPENAI_API_KEY": "sk-from-env"},
            )
            provider, model = providers.resolve("openai/gpt-4o-mini")
            request = ModelRequest(model=model, messages=[{"role": "user", "content": "hi"}])
            with pytest.raises(ProviderError, match="nope"):
                async for _ in provider.stream(request):
                    pass
            await providers.aclose()
            assert not client.is_closed

        assert str(seen[0].url) == "https://proxy.example/v1/chat/completions"
        assert seen[0].headers["authorization"] == "Bearer sk-from-env"

    async def test_openai_base_url_falls_back_to_the_environment(self):
        providers = registry({"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": "https://env.example/v1"})

        provider, _ = providers.resolve("openai/gpt-4o-mini")

        assert "https://env.example/v1" in repr(provider)
        await providers.aclose()

    async def test_a_compatible_server_never_receives_the_openai_key(self):
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(500, json={"error": {"message": "down"}}, headers={"x-should-retry": "false"})

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            providers = ProviderRegistry(
                Settings(compatible_providers={"ollama": CompatibleProvider(base_url="http://localhost:11434/v1")}),
                http_client=client,
                environ={"OPENAI_API_KEY": "sk-secret"},
            )
            provider, model = providers.resolve("ollama/llama3.2")
            with pytest.raises(ProviderError, match="down"):
                async for _ in provider.stream(ModelRequest(model=model, messages=[])):
                    pass
            await providers.aclose()

        assert "sk-secret" not in seen[0].headers.get("authorization", "")

    async def test_aclose_closes_built_providers_and_forgets_them(self):
        providers = registry({"OPENAI_API_KEY": "sk-x"})
        first, _ = providers.resolve("openai/gpt-4o-mini")

        await providers.aclose()

        second, _ = providers.resolve("openai/gpt-4o-mini")
        assert second is not first
        await providers.aclose()
