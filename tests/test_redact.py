"""Secret detection by option name, and redaction of args and argv."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from provenance.redact import (
    REDACTED,
    SecretMatcher,
    redact_args,
    redact_argv,
    secret_options,
    secret_values,
    words,
)

MATCHER = SecretMatcher()


class TestSecretMatcher:
    @pytest.mark.parametrize(
        "name",
        [
            "--api-token",
            "hf_token",
            "--hf-token",
            "--hfToken",
            "--api-tokens",
            "PASSWORD",
            "--passwords",
            "--db-passwd",
            "--db-pass",
            "--pass",
            "--passphrase",
            "--api-key",
            "apiKey",
            "--apikey",
            "--api-keys-file",
            "--ssh-keys",
            "access_keys",
            "--private-key",
            "--ssh-key",
            "--access-key",
            "--aws-access-key-id",
            "--wandb-key",
            "WANDB_API_KEY",
            "--client-secret",
            "aws_credentials",
            "--credential-file",
            "--auth",
            "--auth-header",
            "Authorization",
            "--cookie",
            "wandb/api_key",
            "wandb.api_key",
        ],
    )
    def test_secret_names(self, name):
        assert MATCHER(name)

    @pytest.mark.parametrize(
        "name",
        [
            "--tokenizer",
            "--max-tokens",
            "--max-new-tokens",
            "--num-tokens",
            "--pad-token",
            "--eos-token",
            "--author",
            "--authors",
            "--authority",
            "--passes",
            "--bypass",
            "--pass-rate",
            "--passage",
            "--keyframes",
            "--key-column",
            "--sort-key",
            "--text-key",
            "--public-key",
            "natural_key",
            "required_keys",
            "metadata_keys",
            "--metric-keys",
            "--key",
            "key",
            "--monkey",
            "--api-url",
            "--secretary",
            "/run/secrets/hf",
            "runs/token/model.json",
            "out",
        ],
    )
    def test_ordinary_names(self, name):
        assert not MATCHER(name)

    def test_extra_names_match_as_words(self):
        matcher = SecretMatcher(["db_url"])
        assert matcher("--db-url")
        assert matcher("primary_db_url")
        assert not matcher("--db")

    def test_words(self):
        assert words("--hfApi-TOKEN") == ("hf", "api", "token")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--token", nargs=2)
    p.add_argument("-k", "--api-key")
    p.add_argument("--out")
    sub = p.add_subparsers(dest="cmd")
    push = sub.add_parser("push")
    push.add_argument("--secret")
    return p


class TestRedactArgv:
    def test_by_option_and_nargs(self):
        p = parser()
        options = secret_options([p], SecretMatcher())
        argv = ["--token", "a", "b", "--out", "x", "-k", "K", "push", "--secret=S"]
        assert redact_argv(argv, options, set()) == [
            "--token",
            REDACTED,
            REDACTED,
            "--out",
            "x",
            "-k",
            REDACTED,
            "push",
            f"--secret={REDACTED}",
        ]

    def test_options_of_subparsers_are_found(self):
        assert "--secret" in secret_options([parser()], SecretMatcher())

    def test_by_value_when_the_option_form_is_unknown(self):
        assert redact_argv(["--api-k", "K1", "-kK1", "K1"], {}, {"K1"}) == [
            "--api-k",
            REDACTED,
            f"-k{REDACTED}",
            REDACTED,
        ]

    def test_other_options_ending_like_a_secret_are_left_alone(self):
        assert redact_argv(["--out", "x", "-pout"], {}, {"out"}) == ["--out", "x", f"-p{REDACTED}"]

    def test_numbers_under_secret_names_stay_visible(self):
        p = argparse.ArgumentParser()
        p.add_argument("--max-token-length", type=int)
        p.add_argument("--token-file")
        argv = ["--max-token-length", "512", "--token-file", "/run/secrets/hf"]
        args = vars(p.parse_args(argv))
        matcher = SecretMatcher()
        redacted = redact_argv(argv, secret_options([p], matcher), secret_values(args, matcher))
        assert redacted == ["--max-token-length", "512", "--token-file", REDACTED]
        assert redact_args(args, matcher) == {"max_token_length": 512, "token_file": REDACTED}

    def test_args(self):
        args = {"api_key": "K", "token": None, "out": "x"}
        matcher = SecretMatcher()
        assert redact_args(args, matcher) == {"api_key": REDACTED, "token": None, "out": "x"}
        assert secret_values({"token": ["a", "b"], "out": "x"}, matcher) == {"a", "b"}


@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=3),
    st.sampled_from(["--api-key={}", "-k{}", "--api-k={}"]),
)
def test_a_parsed_secret_never_survives(secret, form):
    assume(secret not in f"--api-key={REDACTED}" and secret != "--out")
    p = parser()
    argv = [form.format(secret), "--out", "x"]
    args = vars(p.parse_args(argv))
    matcher = SecretMatcher()
    out = redact_argv(argv, secret_options([p], matcher), secret_values(args, matcher))
    assert not any(secret in token for token in out)
    assert out[1:] == ["--out", "x"]
