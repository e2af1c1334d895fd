"""Secret detection by name, redaction of argv, args, text and whole records, and real runs."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from provenance import build_run_provenance, validate
from provenance.record.redact import (
    MIN_KNOWN_LENGTH,
    REDACTED,
    SecretMatcher,
    known_secrets,
    redact_args,
    redact_argv,
    redact_block,
    redact_document,
    redact_text,
    words,
)
from provenance.record.sidecar import MANIFEST_SCHEMA, canonical_bytes
from tests.conftest import fake_path, load_sidecar, run_fake, run_python, sidecar_of
from tests.handmade import hang_guard
from tests.secret_forms import FORMS, catalogue_alone, leaking, overhidden

MATCHER = SecretMatcher()
DIGEST = "0123456789abcdef" * 4
# Text a generated secret may not be part of, or an assertion that it is absent would lie.
_ALPHABET = st.characters(blacklist_categories=("Cs",), blacklist_characters="<>")


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


def parser(*, subcommands: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--token", nargs=2)
    p.add_argument("-k", "--api-key")
    p.add_argument("-p", "--password", dest="pw")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("-o", "--out")
    p.add_argument("--tokenizer")
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--hf-tokens", nargs="+")
    p.add_argument("--extra", type=json.loads)
    if subcommands:
        push = p.add_subparsers(dest="cmd").add_parser("push")
        push.add_argument("--secret")
    return p


def redacted(argv: list[str], p: argparse.ArgumentParser | None = None) -> list[str]:
    """``argv`` parsed (leftovers allowed) and redacted, as a run records it."""
    p = p or parser()
    args, _rest = p.parse_known_args(argv)
    return redact_argv(argv, [p], MATCHER, args=vars(args))


class TestRedactArgv:
    def test_by_option_and_nargs(self):
        argv = ["--token", "a", "b", "--out", "x", "-k", "K", "push", "--secret=S"]
        assert redacted(argv, parser(subcommands=True)) == [
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

    @pytest.mark.parametrize(
        ("argv", "expected"),
        [
            (["-p", "s1"], ["-p", REDACTED]),
            (["--password", "s1"], ["--password", REDACTED]),
            (["--password=s1"], [f"--password={REDACTED}"]),
            (["-ps1"], [f"-p{REDACTED}"]),
            (["-p=s1"], [f"-p={REDACTED}"]),
            (["--pass", "s1"], ["--pass", REDACTED]),
            (["--passw=s1"], [f"--passw={REDACTED}"]),
            (["-vps1"], [f"-vp{REDACTED}"]),
            (["-vp", "s1"], ["-vp", REDACTED]),
            (["-vos1"], ["-vos1"]),
        ],
    )
    def test_every_form_of_an_option_whose_dest_is_not_secret(self, argv, expected):
        assert redacted([*argv, "--out", "o9"]) == [*expected, "--out", "o9"]

    def test_a_secret_option_with_an_ordinary_dest_is_redacted_in_args(self):
        p = parser()
        args = vars(p.parse_args(["-p", "hunter2", "--out", "o9"]))
        hidden = redact_args(args, MATCHER, [p])
        assert (hidden["pw"], hidden["out"]) == (REDACTED, "o9")
        assert redact_args(args, MATCHER)["pw"] == "hunter2", "without the parser: only names"

    def test_an_open_nargs_secret_takes_every_value_up_to_the_next_option(self):
        argv = ["--hf-tokens", "a", "b", "c", "--out", "x"]
        assert redacted(argv) == ["--hf-tokens", REDACTED, REDACTED, REDACTED, "--out", "x"]

    @pytest.mark.parametrize(
        ("leftover", "expected"),
        [
            (["--wandb-key", "w1"], ["--wandb-key", REDACTED]),
            (["--wandb-key=w1"], [f"--wandb-key={REDACTED}"]),
            (["--hub-token", "--out", "x"], ["--hub-token", "--out", "x"]),
            (["--seed", "7"], ["--seed", "7"]),
        ],
    )
    def test_parse_known_args_leftovers_are_judged_by_name(self, leftover, expected):
        assert redacted(["--tokenizer", "bert", *leftover]) == ["--tokenizer", "bert", *expected]

    def test_a_short_secret_is_not_hidden_in_ordinary_values(self):
        # Hiding --out o9 because the password is o9 would tell the reader the password.
        assert redacted(["-p", "o9", "--out", "o9"]) == ["-p", REDACTED, "--out", "o9"]

    def test_a_long_secret_is_hidden_wherever_it_appears(self):
        secret = "x" * MIN_KNOWN_LENGTH
        argv = ["-p", secret, "--out", f"runs/{secret}/model.json"]
        assert redacted(argv) == ["-p", REDACTED, "--out", f"runs/{REDACTED}/model.json"]
        shorter = secret[1:]
        argv = ["-p", shorter, "--out", f"runs/{shorter}/model.json"]
        assert redacted(argv)[3] == f"runs/{shorter}/model.json"

    def test_values_are_redacted_by_shape(self):
        argv = [
            "--out",
            "https://bot:pw1@hub.example/x",
            "WANDB_API_KEY=abc",
            "--extra",
            '{"api_key": "k1", "region": "eu"}',
            "--tokenizer=Authorization: Bearer t1",
        ]
        assert redacted(argv) == [
            "--out",
            f"https://{REDACTED}@hub.example/x",
            f"WANDB_API_KEY={REDACTED}",
            "--extra",
            f'{{"api_key": "{REDACTED}", "region": "eu"}}',
            f"--tokenizer=Authorization: Bearer {REDACTED}",
        ]

    def test_numbers_of_numeric_options_stay_visible(self):
        p = argparse.ArgumentParser()
        p.add_argument("--max-token-length", type=int)
        p.add_argument("--token-budget", type=int)
        p.add_argument("--token-file")
        argv = ["--max-token-length", "512", "--token-budget", "100", "--token-file", "/run/s/hf"]
        assert redacted(argv, p) == [*argv[:4], "--token-file", REDACTED]
        args = vars(p.parse_args(argv))
        assert redact_args(args, MATCHER, [p]) == {
            "max_token_length": 512,
            "token_budget": 100,
            "token_file": REDACTED,
        }

    def test_an_exact_option_wins_over_the_longer_ones_it_abbreviates(self):
        p = argparse.ArgumentParser()
        p.add_argument("--pass", dest="passes", type=int)
        p.add_argument("--password")
        assert redacted(["--pass=3", "--pass", "4"], p) == ["--pass=3", "--pass", "4"]

    def test_an_abbreviated_ordinary_option_keeps_its_value(self):
        # Read as --out, o9 is an ordinary value; read as unknown, it would equal the password.
        assert redacted(["-p", "o9", "--ou", "o9"]) == ["-p", REDACTED, "--ou", "o9"]

    def test_an_open_nargs_ordinary_option_keeps_all_its_values(self):
        p = parser()
        p.add_argument("--inputs", nargs="+")
        assert redacted(["-p", "o9", "--inputs", "a", "o9"], p) == [
            "-p",
            REDACTED,
            "--inputs",
            "a",
            "o9",
        ]

    def test_a_leftover_secret_is_hidden_wherever_else_it_appears(self):
        secret = "leftover-secret-1"
        argv = ["--wandb-key", secret, "--out", f"runs/{secret}/x"]
        assert redacted(argv) == ["--wandb-key", REDACTED, "--out", f"runs/{REDACTED}/x"]

    def test_ordinary_neighbours_stay_visible(self):
        argv = ["--tokenizer", "bert", "--max-tokens", "512", "--out", "o9", "-v"]
        assert redacted(argv) == argv

    def test_a_secret_positional_is_redacted_where_it_stands(self):
        p = argparse.ArgumentParser()
        p.add_argument("src")
        p.add_argument("token")
        p.add_argument("--out")
        argv = ["data.csv", "t1", "--out", "t1", "--", "t1"]
        args = vars(p.parse_args(argv[:4]))
        assert redact_argv(argv, [p], MATCHER, args=args) == [
            "data.csv",
            REDACTED,
            "--out",
            "t1",
            "--",
            REDACTED,
        ]

    def test_after_a_double_dash_nothing_is_an_option(self):
        assert redacted(["--out", "o9", "--", "-p", "o9"]) == ["--out", "o9", "--", "-p", "o9"]

    def test_forms_no_parser_explains_are_caught_by_value(self):
        args = {"api_key": "K1"}
        assert redact_argv(["--api-k", "K1", "-kK1", "--api-k=K1"], args=args) == [
            "--api-k",
            REDACTED,
            f"-k{REDACTED}",
            f"--api-k={REDACTED}",
        ]

    def test_without_a_parser_options_are_judged_by_name(self):
        argv = ["--password", "s1", "--out", "o9", "--hf-token=t1"]
        assert redact_argv(argv) == [
            "--password",
            REDACTED,
            "--out",
            "o9",
            f"--hf-token={REDACTED}",
        ]


@given(
    st.text(alphabet=_ALPHABET, min_size=1),
    st.sampled_from(
        [
            ["--password", "{}"],
            ["--password={}"],
            ["-p{}"],
            ["-vp{}"],
            ["-vp", "{}"],
            ["--passw", "{}"],
            ["--api-k={}"],
            ["--wandb-key", "{}"],
            ["--wandb-key={}"],
            ["--token", "{}", "{}"],
        ]
    ),
)
def test_a_secret_never_survives_in_argv(secret, form):
    # argparse reads neither a leading "-" as a value nor a leading "=" as part of one.
    assume(not secret.startswith(("-", "=")))
    fixed = ["--out", "o9"]
    assume(not any(secret in part for part in [*form, *fixed, REDACTED]))
    argv = [part.format(secret) for part in form] + fixed
    out = redacted(argv)
    assert not any(secret in token for token in out)
    assert out[-2:] == fixed


class TestRedactText:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("https://user:pw@host/x", f"https://{REDACTED}@host/x"),
            ("s3://KEY:SECRET@bucket/p", f"s3://{REDACTED}@bucket/p"),
            ("git+https://ghp_x@github.com/o/r", f"git+https://{REDACTED}@github.com/o/r"),
            ("Authorization: Bearer abc.def", f"Authorization: Bearer {REDACTED}"),
            ("curl -H 'Authorization: token ghp_x'", f"curl -H 'Authorization: {REDACTED}'"),
            ("WANDB_API_KEY=TOKEN rest", f"WANDB_API_KEY={REDACTED} rest"),
            ("bearer abc", f"bearer {REDACTED}"),
            ("Basic dXNlcjpwYXNz", f"Basic {REDACTED}"),
            ("WANDB_API_KEY=abc other=1", f"WANDB_API_KEY={REDACTED} other=1"),
            ("db_password=x;y", f"db_password={REDACTED};y"),
            ("https://h/x?token=abc&page=2", f"https://h/x?token={REDACTED}&page=2"),
            ("env=WANDB_API_KEY=abc", f"env=WANDB_API_KEY={REDACTED}"),
            ('"password"="a b"', f'"password"="{REDACTED}"'),
            ('{"api_key": "x", "n": 1}', f'{{"api_key": "{REDACTED}", "n": 1}}'),
            ('cfg {"a": {"secret": "x"}} end', f'cfg {{"a": {{"secret": "{REDACTED}"}}}} end'),
            ('{"credentials": {"user": "u"}}', f'{{"credentials": "{REDACTED}"}}'),
            ("{'api_key': 'x', 'n': 1}", f"{{'api_key': '{REDACTED}', 'n': 1}}"),
            ("{'credentials': {'user': 'u'}}", f"{{'credentials': {REDACTED}}}"),
            ("Config(api_key='x', n=2)", f"Config(api_key='{REDACTED}', n=2)"),
            ("hf_" + "a" * 34, REDACTED),
            ("key AKIAABCDEFGHIJKLMNOP used", f"key {REDACTED} used"),
            ("sk-" + "b" * 40, REDACTED),
            ("key=AIza" + "Xy_-9" * 7 + " used", f"key={REDACTED} used"),
            ("stripe rk_live_" + "c" * 24, f"stripe {REDACTED}"),
            ("sk_test_" + "d" * 24, REDACTED),
            ("//registry/:_authToken npm_" + "e" * 36, f"//registry/:_authToken {REDACTED}"),
            ("s3://b/k?X-Amz-Signature=ab12&x=1", f"s3://b/k?X-Amz-Signature={REDACTED}&x=1"),
            ("https://b/o?X-Goog-Signature=0a1b", f"https://b/o?X-Goog-Signature={REDACTED}"),
            ("https://a/c?sv=1&sig=Zm9v%3D", f"https://a/c?sv=1&sig={REDACTED}"),
            (
                "https://h/cb?next=https%3A%2F%2Fbot%3Apw%40hub%2Fx&y=1",
                f"https://h/cb?next=https%3A%2F%2F{REDACTED}%40hub%2Fx&y=1",
            ),
            (
                "https://hooks.slack.com/services/T0A1/B2C3/abcdEFGH1234",
                f"https://hooks.slack.com/services/{REDACTED}",
            ),
            (
                "https://discord.com/api/webhooks/1234567/abc-DEF_gh",
                f"https://discord.com/api/webhooks/{REDACTED}",
            ),
            (
                "https://s3/k?Signature=vjby%2B&Expires=1",
                f"https://s3/k?Signature={REDACTED}&Expires=1",
            ),
            (
                "k=-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- end",
                f"k={REDACTED} end",
            ),
            ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl", REDACTED),
            # JSON held as a string, in JSON or in an exception message: its quotes escaped.
            (
                '{\\"api_key\\": \\"abc\\", \\"n\\": 1}',
                f'{{\\"api_key\\": \\"{REDACTED}\\", \\"n\\": 1}}',
            ),
            (
                "bad config " + json.dumps(json.dumps({"db_password": "two words"})),
                f'bad config "{{\\"db_password\\": \\"{REDACTED}\\"}}"',
            ),
            (
                "-----BEGIN PGP PRIVATE KEY BLOCK-----\nx\n-----END PGP PRIVATE KEY BLOCK-----",
                REDACTED,
            ),
            # Command lines in a string: the credentials their tools take by a short option.
            ("mysql -uroot -P3306 -pS3cret db", f"mysql -uroot -P3306 -p{REDACTED} db"),
            ('sh -c "mysqldump -pTop db > d.sql"', f'sh -c "mysqldump -p{REDACTED} db > d.sql"'),
            ("mysql -u root -p db", "mysql -u root -p db"),  # it asks for the password
            ("curl -fsS -u alice:pw1 https://h/x", f"curl -fsS -u {REDACTED} https://h/x"),
            ("curl --user=bob:hunter2 https://h", f"curl --user={REDACTED} https://h"),
            ("curl -u alice https://h", "curl -u alice https://h"),  # a user alone
            ("sshpass -p Hunter2x ssh h", f"sshpass -p {REDACTED} ssh h"),
            ("redis-cli -h r -a Sekrit99 ping", f"redis-cli -h r -a {REDACTED} ping"),
            ("ls -p folder; echo -pX", "ls -p folder; echo -pX"),
        ],
    )
    def test_shapes(self, text, expected):
        assert redact_text(text) == expected

    @pytest.mark.parametrize(
        "text",
        [
            "--tokenizer=bert",
            "max_tokens=512",
            "author: Jane",
            "https://host/x",
            "see https://host/x and mail me@host",
            f"sha256={DIGEST}",
            "Basic usage",
            "Basic auth is off",
            "password=None",
            '{"tokenizer": "bert", "max_tokens": 512}',
            '{\\"tokenizer\\": \\"bert\\", \\"max_tokens\\": 512}',
            'say \\"hello\\": \\"world\\"',
            "a == b",
            "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
            "run_test_" + "f" * 24,
            "npm_install_log.txt",
            "https://h/p?signed=1&design=2&signature_file=a.sig",
            "https%3A%2F%2Fhost%2Fpath%40x",
            "https://hooks.slack.com/",
            "",
        ],
    )
    def test_ordinary_text_is_left_alone(self, text):
        assert redact_text(text) == text

    def test_extra_names_count_in_text(self):
        assert redact_text("db_url=x", is_secret=SecretMatcher(["db_url"])) == f"db_url={REDACTED}"

    def test_known_values_are_hidden_from_the_least_length(self):
        long, short = "L" * MIN_KNOWN_LENGTH, "S" * (MIN_KNOWN_LENGTH - 1)
        text = f"got {long} and {short}"
        assert redact_text(text, known=[long, short]) == f"got {REDACTED} and {short}"

    def test_overlapping_known_values_are_hidden_together_in_any_order(self):
        a, b = "ABCDEFGH12", "12345678XY"
        text = "pre ABCDEFGH12345678XY post"
        for known in ([a, b], [b, a]):
            assert redact_text(text, known=known) == f"pre {REDACTED} post"

    def test_a_digest_is_never_partly_rewritten(self):
        inside = DIGEST[8:24]
        assert redact_text(f"blake3 {DIGEST}", known=[inside]) == f"blake3 {DIGEST}"
        assert redact_text(f"token {DIGEST}", known=[DIGEST]) == f"token {REDACTED}"

    def test_an_escaped_value_in_json_text_is_hidden(self):
        secret = 'quo"te\\d-long'
        assert secret not in redact_text(json.dumps({"note": secret}), known=[secret])
        assert json.dumps(secret)[1:-1] not in redact_text(json.dumps([secret]), known=[secret])

    @given(st.text(alphabet=_ALPHABET))
    def test_it_is_idempotent(self, text):
        once = redact_text(text)
        assert redact_text(once) == once


@given(
    st.text(alphabet=_ALPHABET, min_size=MIN_KNOWN_LENGTH),
    st.text(alphabet=_ALPHABET),
    st.text(alphabet=_ALPHABET),
)
def test_a_known_secret_never_appears_in_text(secret, before, after):
    assume(secret not in REDACTED)
    assert secret not in redact_text(before + secret + after, known=[secret])


@given(
    st.text(alphabet=st.characters(whitelist_categories=("L", "N")), min_size=1),
    st.sampled_from(
        [
            "https://bot:{}@hub.example/x",
            "WANDB_API_KEY={} rest",
            "db_password: {}",
            "Authorization: Bearer {}",
            '{{"note": "n", "api_key": "{}"}}',
            "{{'token': '{}'}}",
            "failed with auth_token={}; retrying",
            "fetched https://bucket.s3.amazonaws.com/m.onnx?X-Amz-Signature={}&X-Amz-Expires=60",
            "https://acct.blob.core.windows.net/c/m.onnx?sv=2022&sig={}",
            "login?next=https%3A%2F%2Fbot%3A{}%40hub.example%2Fx",
            "posted to https://hooks.slack.com/services/T01/B02/{}",
            "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----",
            "ran mysql --host db -p{} corpus",
            "curl -u me:{} https://hub.example/x",
            "sshpass -p {} rsync -a a b",
        ]
    ),
)
def test_a_shaped_secret_never_appears_in_text(secret, shape):
    assume(secret not in shape.format("") + REDACTED)
    assume(secret not in ("None", "null", "True", "true", "False", "false"))  # kept as they are
    assert secret not in redact_text(shape.format(secret))


@pytest.mark.parametrize("run", ["a.", "-a", "a-"])
def test_a_long_run_of_name_characters_is_read_once_not_once_per_dot(run):
    # Each "." or "-" started a name that ran to the end of the run, then gave it back one
    # character at a time looking for its "=" (a URL scheme its "://" too): 40 KB took half a
    # minute.
    text = "x=1 " + run * 100_000
    with hang_guard(20):
        assert redact_text(text) == text


class TestToolCredentials:
    """The credential a command-line tool takes, in a command held in a string."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            # Quoted, as a shell takes it: the quotes go with it.
            ("mysql -p'S3cret x' db", f"mysql -p{REDACTED} db"),
            ('mysql -uroot -p"S3cret" db', f"mysql -uroot -p{REDACTED} db"),
            ("curl -u 'alice:pw 1' https://h", f"curl -u {REDACTED} https://h"),
            ('curl -fsS -u "alice:pw1" https://h', f"curl -fsS -u {REDACTED} https://h"),
            ("sshpass -p 'Hunter 2x' ssh h", f"sshpass -p {REDACTED} ssh h"),
            ('redis-cli -h r -a "Sek rit99" ping', f"redis-cli -h r -a {REDACTED} ping"),
            (r"mysql -p'S3'\''cret' db", f"mysql -p{REDACTED} db"),  # a quote inside
            ("mysql -p'unclosed db", f"mysql -p{REDACTED} db"),  # a quote left open
            # curl's short options run together, the one taking the credential last.
            ("curl -su alice:pw1 https://h", f"curl -su {REDACTED} https://h"),
            ("curl -fsSLU px:pw2 h", f"curl -fsSLU {REDACTED} h"),
            # wget's password options take the next word too.
            ("wget --password Hunter2x https://h", f"wget --password {REDACTED} https://h"),
            ("wget --http-password\tHunter2x h", f"wget --http-password\t{REDACTED} h"),
        ],
    )
    def test_quoted_and_spaced_forms(self, text, expected):
        assert redact_text(text) == expected

    def test_the_credential_goes_wherever_else_the_string_holds_it(self):
        text = "mysql -pS3cretPw1 db || echo 'login with S3cretPw1 failed'"
        assert "S3cretPw1" not in redact_text(text)
        text = "curl -u alice:Hunter2pw https://h; PASS=Hunter2pw ./retry"
        assert "Hunter2pw" not in redact_text(text)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("MYSQL_PWD=S3cretPw1 mysql -uroot db", f"MYSQL_PWD={REDACTED} mysql -uroot db"),
            ("SSHPASS=Hunter2x sshpass -e ssh h", f"SSHPASS={REDACTED} sshpass -e ssh h"),
            ("PGPASSWORD=S3cretPw1 psql -h db", f"PGPASSWORD={REDACTED} psql -h db"),
            ("PWD=/home/me OLDPWD=/tmp", "PWD=/home/me OLDPWD=/tmp"),  # folders, not passwords
        ],
    )
    def test_the_variables_the_tools_read_their_password_from(self, text, expected):
        assert redact_text(text) == expected

    @pytest.mark.parametrize(
        "text",
        [
            "mysql-connector -pfoo installed",  # other programs whose names start so
            "sshpass-wrapper -p 22 host",
            "my-mysql -pfoo",  # and one whose name ends so
        ],
    )
    def test_other_programs_keep_their_options(self, text):
        assert redact_text(text) == text

    @pytest.mark.parametrize("word", ["curl", "mysql", "sshpass", "redis-cli", "wget"])
    def test_a_line_naming_a_tool_many_times_is_read_once_not_once_per_name(self, word):
        # Each name once looked for its option up to the end of the line: a long line of them
        # (a script's output, JSON with its newlines escaped) took minutes.
        text = f"{word} x " * 40_000
        with hang_guard(20):
            assert redact_text(text) == text

    @pytest.mark.xfail(
        strict=True,
        reason="any option of the tool's letter later on the line counts: prose mentioning "
        "the tool is cut where a later word starts with -p or -a",
    )
    @pytest.mark.parametrize(
        "text",
        [
            "I used mysql and then ran grep -pattern",
            "redis-cli is fast. Then ls -a dir",
        ],
    )
    def test_prose_that_names_the_tool_is_left_alone(self, text):
        assert redact_text(text) == text


def block(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "schema": "provenance.run/v1",
        "entrypoint": {"path": "train.py", "sha256": DIGEST, "blake3": DIGEST},
        "code": {"train.py": DIGEST},
        "argv": ["--out", "o9"],
        "args": {"out": "o9"},
        "inputs": {},
        "outputs": {
            "model": {
                "path": "o9",
                "exists": True,
                "kind": "file",
                "size_bytes": 1,
                "blake3": DIGEST,
                "sha256": DIGEST,
                "written_by_run": True,
            }
        },
        "hash_policy": {
            "algorithms": ["blake3", "sha256"],
            "sha256_max_bytes": 1,
            "directory_digest": "provenance.tree/v1",
        },
        "outcome": {"status": "succeeded", "exit_code": 0, "error": None, "gates": {}},
    }
    base.update(changes)
    return base


def document(fields: dict[str, object] | None = None, **changes: object) -> dict[str, object]:
    return {"schema": MANIFEST_SCHEMA, **(fields or {}), "run_provenance": block(**changes)}


class TestRedactDocument:
    def test_fields_by_name_at_any_depth(self):
        fields = {
            "api_key": "k1",
            "upload": {"endpoint": "https://hub", "db_password": "p1", "retries": 2},
            "tokens": [101, 2023],
            "hf_token": None,
        }
        hidden = redact_document(document(fields), MATCHER)
        assert hidden["api_key"] == REDACTED
        assert hidden["upload"] == {
            "endpoint": "https://hub",
            "db_password": REDACTED,
            "retries": 2,
        }
        assert hidden["tokens"] == [101, 2023], "numbers are never credentials"
        assert hidden["hf_token"] is None

    def test_a_secret_the_script_was_given_is_hidden_everywhere(self):
        secret = "given-secret-1"
        error = {"type": "RuntimeError", "message": f"login as {secret} failed"}
        outcome = {"status": "failed", "exit_code": 1, "error": error, "gates": {}}
        doc = document(
            {"note": f"url https://h/{secret}"}, args={"api_key": secret}, outcome=outcome
        )
        assert secret not in canonical_bytes(redact_document(doc, MATCHER)).decode()

    def test_a_block_alone_spreads_the_secrets_of_its_args(self):
        secret = "given-secret-2"
        error = {"type": "RuntimeError", "message": f"login as {secret} failed"}
        outcome = {"status": "failed", "exit_code": 1, "error": error, "gates": {}}
        hidden = redact_block(block(args={"hf_token": secret}, outcome=outcome), MATCHER)
        assert hidden["outcome"]["error"]["message"] == f"login as {REDACTED} failed"

    def test_a_value_recorded_under_a_secret_name_is_hidden_only_where_it_stands(self):
        # A name misjudged as secret must not wipe an ordinary value from the whole record.
        fields = {
            "dedup": {"key": ["corpus", "src_sha256"]},
            "source_token": "src_sha256",
            "input_row_keys": ["src", "src_sha256"],
        }
        hidden = redact_document(document(fields), MATCHER)
        assert hidden["source_token"] == REDACTED
        assert hidden["dedup"] == fields["dedup"], "a bare key is a key, not a credential"
        assert hidden["input_row_keys"] == fields["input_row_keys"]

    def test_gates_keep_their_verdict(self):
        gates = {
            "upload": {"passed": True, "auth_token": "t1", "retries": 2},
            "hub_token": {"passed": False, "note": "n1", "used": 5},
            "token_budget": {"passed": True, "note": "n2", "used": 5},  # a measure of tokens
        }
        outcome = {"status": "succeeded", "exit_code": 0, "error": None, "gates": gates}
        hidden = redact_document(document(outcome=outcome), MATCHER)
        assert hidden["run_provenance"]["outcome"]["gates"] == {
            "upload": {"passed": True, "auth_token": REDACTED, "retries": 2},
            "hub_token": {"passed": False, "note": REDACTED, "used": 5},
            "token_budget": {"passed": True, "note": "n2", "used": 5},
        }
        validate(hidden)

    def test_the_error_message_by_shape_and_known_value(self):
        message = "connect postgres://u:pw@db/x failed for hunter2-long"
        error = {"type": "RuntimeError", "message": message}
        outcome = {"status": "failed", "exit_code": 1, "error": error, "gates": {}}
        hidden = redact_document(document(outcome=outcome), MATCHER, ["hunter2-long"])
        assert hidden["run_provenance"]["outcome"]["error"] == {
            "type": "RuntimeError",
            "message": f"connect postgres://{REDACTED}@db/x failed for {REDACTED}",
        }

    def test_digests_and_the_schema_are_never_touched(self):
        doc = document()
        # A known value that is part of every digest, and equal to the schema's name.
        hidden = redact_document(doc, MATCHER, [DIGEST[:16], "provenance.run/v1", DIGEST])
        assert hidden == doc
        validate(hidden)

    def test_argv_stays_a_list_of_strings(self):
        argv = ["--password=p1", "--token-budget=100", "WANDB_API_KEY=k1", "--out", "o9"]
        hidden = redact_document(document(argv=argv), MATCHER)
        assert hidden["run_provenance"]["argv"] == [
            f"--password={REDACTED}",
            "--token-budget=100",
            f"WANDB_API_KEY={REDACTED}",
            "--out",
            "o9",
        ]
        validate(hidden)

    def test_keys_holding_secrets_are_hidden_without_merging(self):
        fields = {"by_url": {"https://a:p1@h": 1, "https://b:p2@h": 2}}
        hidden = redact_document(document(fields), MATCHER)
        assert hidden["by_url"] == {f"https://{REDACTED}@h": 1, f"https://{REDACTED}@h#2": 2}

    def test_paths_are_redacted_by_known_value(self):
        secret = "path-secret-1"
        outputs = {"model": {"path": f"runs/{secret}/o9", "exists": False}}
        hidden = redact_block(block(outputs=outputs), MATCHER, [secret])
        assert hidden["outputs"]["model"] == {"path": f"runs/{REDACTED}/o9", "exists": False}

    def test_it_is_idempotent(self):
        doc = document({"api_key": "k1", "note": "token=abc"}, argv=["--password=p1"])
        once = redact_document(doc, MATCHER)
        assert redact_document(once, MATCHER) == once

    @given(st.text(alphabet=_ALPHABET, min_size=MIN_KNOWN_LENGTH), st.randoms())
    def test_a_known_secret_never_appears_and_order_does_not_matter(self, secret, rnd):
        assume(secret not in REDACTED and secret not in canonical_bytes(document()).decode())
        others = ["another-secret-1", "another-secret-22", "yet-another-3"]
        error = {"type": "E", "message": f"x{secret}y"}
        outcome = {"status": "failed", "exit_code": 1, "error": error, "gates": {}}
        doc = document({"note": f"[{secret}]", secret: 1}, argv=[f"a{secret}"], outcome=outcome)
        known = [secret, *others]
        first = canonical_bytes(redact_document(doc, MATCHER, known))
        rnd.shuffle(known)
        assert canonical_bytes(redact_document(doc, MATCHER, known)) == first
        assert secret not in first.decode()
        validate(json.loads(first))


class TestKnownSecrets:
    def test_from_argv_and_args(self):
        p = parser()
        argv = ["-p", "password-1", "--wandb-key", "leftover-1", "-k", "k1", "--out", "o9"]
        argv += ["--extra", '{"db_password": "json-password-1", "region": "eu-west-1"}']
        args, _ = p.parse_known_args(argv)
        found = known_secrets(argv, vars(args), [p], MATCHER)
        assert found == ("json-password-1", "leftover-1", "password-1", "k1")  # k1: any length

    def test_it_does_not_depend_on_the_order_values_were_found_in(self):
        values = [f"secret-{i:02d}-{'x' * i}" for i in range(8)]
        shuffled = values[:]
        random.Random(7).shuffle(shuffled)
        assert known_secrets([], {"tokens": values}, [], MATCHER) == known_secrets(
            [], {"tokens": shuffled}, [], MATCHER
        )

    def test_a_tool_credential_in_a_command_it_was_given_is_hidden_wherever_the_run_says_it(
        self, tmp_path
    ):
        # The run is given a command line; its error names the password the command held.
        script = tmp_path / "s.py"
        script.write_text(
            "import argparse, sys\n"
            "from provenance import recorded_run\n"
            "@recorded_run(outputs={'out': 'out'})\n"
            "def main(argv=None):\n"
            "    p = argparse.ArgumentParser()\n"
            "    p.add_argument('--cmd')\n"
            "    p.add_argument('--out')\n"
            "    a = p.parse_args(argv)\n"
            "    open(a.out, 'w').write('x')\n"
            "    raise RuntimeError('the database refused ' + a.cmd.split('-p')[1].split()[0])\n"
            "sys.exit(main())\n"
        )
        proc = run_python(
            script, "--cmd", "mysql -uroot -pS3cretPw1 db", "--out", "o", cwd=tmp_path
        )
        assert proc.returncode == 1, proc.stderr
        record = (tmp_path / "o.manifest.json").read_text("utf-8")
        assert "the database refused" in record
        assert "S3cretPw1" not in record

    def test_tool_credentials_in_argv_are_known(self):
        argv = ["--cmd", "curl -su alice:Hunter2pw https://h", "--db", "mysql -p'Two words1'"]
        assert known_secrets(argv, {}, [], MATCHER) == (
            "alice:Hunter2pw",
            "Two words1",
            "Hunter2pw",
        )


def test_known_secrets_come_in_one_order_under_any_hash_seed(monkeypatch):
    program = (
        "from provenance.record.redact import SecretMatcher, known_secrets\n"
        "values = [f'secret-{i:03d}' for i in range(200)]\n"
        "args = {'tokens': values, 'api_keys': values[::-1]}\n"
        "print(known_secrets([], args, [], SecretMatcher()))"
    )
    printed = set()
    for seed in ("1", "2", "3"):
        monkeypatch.setenv("PYTHONHASHSEED", seed)
        proc = run_python("-c", program)
        assert proc.returncode == 0, proc.stderr
        printed.add(proc.stdout)
    assert len(printed) == 1


class TestBuildRunProvenance:
    def test_the_public_builder_redacts_args_argv_and_gates(self):
        p = argparse.ArgumentParser()
        p.add_argument("-k", "--api-key")
        p.add_argument("--out")
        p.add_argument("--extra", type=json.loads)
        argv = ["-kk1", "--out", "o9", "--extra", '{"db_password": "k2"}']
        built = build_run_provenance(
            entrypoint=fake_path("secret_script"),
            argv=argv,
            args=p.parse_args(argv),
            exit_code=0,
            gates={"upload": {"passed": True, "auth_token": "gate-token-1"}},
        )
        text = json.dumps(built)
        for secret in ("k1", "k2", "gate-token-1"):
            assert secret not in text
        assert built["argv"][:3] == [f"-k{REDACTED}", "--out", "o9"]

    def test_without_a_parser_an_ordinary_dest_needs_redact(self):
        # -p/--password stored as pw: the builder sees no parser, so only redact= names it.
        argv = ["-p", "pw1", "--out", "o9"]
        args = parser().parse_args(argv)
        entrypoint = fake_path("secret_script")
        built = build_run_provenance(entrypoint=entrypoint, argv=argv, args=args, redact=["pw"])
        assert (built["argv"], built["args"]["pw"]) == (["-p", REDACTED, "--out", "o9"], REDACTED)


# -- real runs -----------------------------------------------------------------------------------

PASSWORD = "pw-Xq7-long-1"
PLANTED = {
    "clustered short flag": PASSWORD,
    "attached long option": "hf_tok-2b9aq",
    "parse_known_args leftover": "wandb-Kz81-3",
    "URL userinfo": "dbpass-Mm42-4",
    "NAME=value pair": "envkey-Pq55-5",
    "JSON option": "jsonkey-Rt66-6",
    "recorded field": "field-Sv77-7",
    "nested recorded field": "nested-Ux88-8",
    "gate value": "gate-Wy99-9",
    "bearer token in the error": "bearer-Za10-10",
}
ENVIRONMENT = {
    "FAKE_SERVICE_KEY": PLANTED["recorded field"],
    "FAKE_DB": PLANTED["nested recorded field"],
    "FAKE_GATE_TOKEN": PLANTED["gate value"],
    "FAKE_BEARER": PLANTED["bearer token in the error"],
}


def leaky_argv(*more: str) -> list[str]:
    return [
        "--out",
        "o9",
        f"-vp{PASSWORD}",
        f"--hf-token={PLANTED['attached long option']}",
        "--wandb-key",
        PLANTED["parse_known_args leftover"],
        "--db-url",
        f"postgres://trainer:{PLANTED['URL userinfo']}@db.example/runs",
        "--env",
        f"WANDB_API_KEY={PLANTED['NAME=value pair']}",
        "--extra",
        json.dumps({"api_key": PLANTED["JSON option"], "region": "eu"}),
        "--tokenizer",
        "bert",
        "--max-tokens",
        "512",
        *more,
    ]


class TestNoSecretLeavesARun:
    """One distinct secret in every channel; none may reach the sidecar, the model or stderr."""

    @pytest.fixture
    def folder(self, tmp_path, monkeypatch):
        for name, value in ENVIRONMENT.items():
            monkeypatch.setenv(name, value)
        # The run's own folder is named after the password: every path then holds it.
        folder = tmp_path / PASSWORD
        folder.mkdir()
        return folder

    @pytest.fixture
    def failed(self, folder):
        proc = run_fake("leaky_script", *leaky_argv("--fail"), cwd=folder)
        assert proc.returncode == 1, proc.stderr
        return folder, proc

    def assert_nothing_planted_in(self, text):
        leaked = [channel for channel, secret in PLANTED.items() if secret in text]
        assert not leaked

    def test_the_sidecar_holds_no_secret(self, failed):
        folder, _ = failed
        self.assert_nothing_planted_in(sidecar_of(folder / "o9").read_text("utf-8"))

    def test_the_embedded_block_holds_no_secret(self, failed):
        folder, _ = failed
        model = (folder / "o9").read_text("utf-8")
        assert "run_provenance" in json.loads(model)
        self.assert_nothing_planted_in(model)

    def test_stderr_holds_no_secret(self, folder):
        proc = run_fake("leaky_script", *leaky_argv("--plain"), cwd=folder)
        assert proc.returncode == 0, proc.stderr
        assert "did not embed run_provenance" in proc.stderr, "the note names the model's path"
        assert REDACTED in proc.stderr
        self.assert_nothing_planted_in(proc.stderr)

    def test_the_record_log_note_holds_no_secret(self, folder, monkeypatch):
        monkeypatch.setenv("PROVENANCE_RECORD_LOG", str(folder / "no-such-folder" / "records"))
        proc = run_fake("leaky_script", *leaky_argv(), cwd=folder)
        assert proc.returncode == 0, proc.stderr
        assert "could not note the record" in proc.stderr
        self.assert_nothing_planted_in(proc.stderr)

    def test_the_note_of_a_failed_undo_holds_no_secret(self, folder, monkeypatch, capsys):
        from provenance import SidecarWriteError
        from provenance.record import write as write_module
        from tests.fakes import leaky_script

        writes, atomic_write = [], write_module.atomic_write

        def embed_once(path, data, **options):
            # The block goes into the model; the sidecar finds the disk full; taking the block
            # back out of the model fails too.
            writes.append(path)
            if len(writes) == 2:
                raise OSError(f"disk full under {Path(path).parent}")
            if len(writes) > 2:
                raise OSError(f"read-only: {path}")
            atomic_write(path, data, **options)

        monkeypatch.setattr(write_module, "atomic_write", embed_once)
        monkeypatch.chdir(folder)
        with pytest.raises(SidecarWriteError):
            leaky_script.main(leaky_argv())
        err = capsys.readouterr().err
        assert "could not take run_provenance back out of" in err
        assert "could not write the sidecar" in err
        self.assert_nothing_planted_in(err)

    def test_what_stays_visible(self, failed):
        folder, _ = failed
        document = load_sidecar(sidecar_of(folder / "o9"))
        block = document["run_provenance"]
        assert block["argv"] == [
            "--out",
            "o9",
            f"-vp{REDACTED}",
            f"--hf-token={REDACTED}",
            "--wandb-key",
            REDACTED,
            "--db-url",
            f"postgres://{REDACTED}@db.example/runs",
            "--env",
            f"WANDB_API_KEY={REDACTED}",
            "--extra",
            f'{{"api_key": "{REDACTED}", "region": "eu"}}',
            "--tokenizer",
            "bert",
            "--max-tokens",
            "512",
            "--fail",
        ]
        args = block["args"]
        assert (args["pw"], args["hf_token"]) == (REDACTED, REDACTED)
        assert args["extra"] == {"api_key": REDACTED, "region": "eu"}
        assert (args["tokenizer"], args["max_tokens"], args["verbose"]) == ("bert", 512, True)
        assert document["service_api_key"] == REDACTED
        assert document["upload"] == {
            "endpoint": "https://hub.example/models",
            "db_password": REDACTED,
        }
        assert block["outcome"]["gates"]["upload"] == {
            "passed": True,
            "auth_token": REDACTED,
            "retries": 2,
        }
        assert block["outcome"]["error"] == {
            "type": "RuntimeError",
            "message": f"upload refused for password {REDACTED}; "
            f"sent Authorization: Bearer {REDACTED}",
        }
        assert block["outputs"]["model"]["path"].endswith(f"/{REDACTED}/o9")

    def test_a_short_password_is_hidden_only_where_it_is_given(self, tmp_path):
        proc = run_fake("leaky_script", "--out", "o9", "-p", "o9", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        block = load_sidecar(sidecar_of(tmp_path / "o9"))["run_provenance"]
        assert block["argv"] == ["--out", "o9", "-p", REDACTED]
        assert block["args"]["pw"] == REDACTED, "a dest named by its option, not by itself"
        assert block["outputs"]["model"]["path"].endswith("/o9")

    def test_the_same_run_writes_the_same_bytes_under_any_hash_seed(self, folder, monkeypatch):
        records = []
        for seed in ("1", "2"):
            monkeypatch.setenv("PYTHONHASHSEED", seed)
            proc = run_fake("leaky_script", *leaky_argv(), cwd=folder)
            assert proc.returncode == 0, proc.stderr
            records.append((sidecar_of(folder / "o9").read_bytes(), (folder / "o9").read_bytes()))
        assert records[0] == records[1]


# -- a corpus of forms -----------------------------------------------------------------------------


class TestForms:
    """Every form a secret takes in the corpus is hidden, and ordinary values around it are not."""

    def test_the_corpus_is_large_and_half_new(self):
        assert len(FORMS) >= 100
        assert sum(1 for f in FORMS if f["new"]) * 2 >= len(FORMS)
        assert len({f["note"] for f in FORMS}) == len(FORMS), "each form is named once"

    @pytest.mark.parametrize("form", FORMS, ids=[f["note"] for f in FORMS])
    def test_no_form_leaks(self, form):
        hidden = redact_text(form["text"])
        for secret in form["secrets"]:
            assert secret not in hidden, hidden
        for kept in form.get("keep", []):
            assert kept in hidden, hidden

    @pytest.mark.parametrize("form", FORMS, ids=[f["note"] for f in FORMS])
    def test_no_form_leaks_from_a_message_or_a_record(self, form):
        doc = document(
            {"note": form["text"]},
            argv=["--note", form["text"]],
            outcome={
                "status": "failed",
                "exit_code": 1,
                "error": {"type": "E", "message": form["text"]},
                "gates": {},
            },
        )
        hidden = redact_document(doc, MATCHER)
        block = hidden["run_provenance"]
        said = [hidden["note"], *block["argv"], block["outcome"]["error"]["message"]]
        for secret in form["secrets"]:
            assert not any(secret in text for text in said), said

    def test_both_redactions_measured_on_the_same_forms(self):
        assert leaking(redact_text) == []
        assert overhidden(redact_text) == []
        # The catalogue on its own (every default plugin, as `detect-secrets scan` runs them)
        # misses forms the rules of this package exist for, and hides digests as high entropy.
        missed = leaking(catalogue_alone)
        assert {"bytes repr", "tuple value", "digest header"} <= set(missed), missed
        assert "a digest is kept" in overhidden(catalogue_alone)


class TestStructure:
    """What the parser knows decides, whatever the value looks like."""

    def test_another_prefix_character_is_read_as_argparse_reads_it(self):
        p = argparse.ArgumentParser(prefix_chars="-+")
        p.add_argument("+p", "++password")
        p.add_argument("+v", action="store_true")
        for argv in (["+phunter2"], ["+p", "hunter2"], ["++password=hunter2"], ["+vphunter2"]):
            args = vars(p.parse_args(argv))
            out = redact_argv(argv, [p], MATCHER, args=args)
            assert "hunter2" not in " ".join(out), out
            assert redact_args(args, MATCHER, [p])["password"] == REDACTED
        assert redact_argv(["++pass", "hunter2"], [p], MATCHER)[1] == REDACTED  # abbreviated

    def test_a_secret_option_parsed_to_a_number_is_still_the_secret(self):
        p = argparse.ArgumentParser()
        p.add_argument("--api-key", type=lambda s: int(s, 16))
        p.add_argument("--token-limit", type=int)
        argv = ["--api-key", "ff00aa", "--token-limit", "512"]
        args = vars(p.parse_args(argv))
        assert redact_args(args, MATCHER, [p]) == {"api_key": REDACTED, "token_limit": 512}
        assert redact_argv(argv, [p], MATCHER, args=args) == [
            "--api-key",
            REDACTED,
            "--token-limit",
            "512",
        ]

    def test_a_short_known_secret_leaves_messages_but_not_other_fields(self):
        known = ("pw7",)
        doc = document(
            {"split": "pw7"},
            argv=["--out", "pw7"],
            outcome={
                "status": "failed",
                "exit_code": 1,
                "error": {"type": "E", "message": "login refused for pw7 (pw70 is another)"},
                "gates": {},
            },
        )
        hidden = redact_document(doc, MATCHER, known)
        block = hidden["run_provenance"]
        assert block["outcome"]["error"]["message"] == (
            f"login refused for {REDACTED} (pw70 is another)"
        )
        assert hidden["split"] == "pw7"  # a structured field: a short look-alike stays
        assert block["argv"] == ["--out", "pw7"]
        assert redact_text("no pw7 here", known=known, message=True) == f"no {REDACTED} here"
        assert redact_text("no pw7 here", known=known) == "no pw7 here"

    def test_a_real_script_hides_each_of_them_in_every_field(self, tmp_path):
        from tests.conftest import project_with

        folder = project_with(tmp_path / "proj", "odd_secrets")
        argv = ["--out", "o.txt", "+phunter2", "--api-key", "ff00aa", "--db-pass", "pw7", "--fail"]
        proc = run_python(folder / "odd_secrets.py", *argv, cwd=folder)
        assert proc.returncode == 1
        record = (folder / "o.txt.manifest.json").read_text()
        block = json.loads(record)["run_provenance"]
        assert block["argv"] == [
            *("--out", "o.txt", f"+p{REDACTED}", "--api-key", REDACTED),
            *("--db-pass", REDACTED, "--fail"),
        ]
        assert block["args"]["api_key"] == REDACTED
        assert block["args"]["password"] == REDACTED
        assert "pw7" not in block["outcome"]["error"]["message"]
        for secret in ("hunter2", "ff00aa", str(0xFF00AA), "pw7"):
            assert secret not in record
        shown = run_python("-m", "provenance", "show", "o.txt", cwd=folder)
        assert shown.returncode == 0, shown.stderr
        # Python's own traceback of the script's exception is the script's; the notes are ours.
        notes = [line for line in proc.stderr.splitlines() if line.startswith("provenance:")]
        for secret in ("hunter2", "ff00aa", str(0xFF00AA), "pw7"):
            assert secret not in shown.stdout + "\n".join(notes)


class TestSecretsHeldAsData:
    """A secret's name held as data beside its value, in the structures a script records."""

    def test_name_value_pairs_and_lists_of_pairs_hide_the_value(self):
        fields = {
            "env": [
                {"name": "DB_PASSWORD", "value": "K8sNameValPw9"},
                {"name": "LR", "value": "1"},
            ],
            "params": {"key": "api_token", "value": "RecKVSecret5"},
            "pairs": [["password", "RecTupSecret6"], ["epochs", "3"]],
            "headers": [["Authorization", "token RecHdrList7xx"]],
        }
        hidden = redact_document(document(fields), MATCHER)
        assert hidden["env"] == [
            {"name": "DB_PASSWORD", "value": REDACTED},
            {"name": "LR", "value": "1"},
        ]
        assert hidden["params"] == {"key": "api_token", "value": REDACTED}
        assert hidden["pairs"] == [["password", REDACTED], ["epochs", "3"]]
        assert hidden["headers"] == [["Authorization", REDACTED]]

    def test_a_config_secret_is_hidden_wherever_else_the_run_says_it(self):
        config = {"env": [{"name": "HF_TOKEN", "value": "CfgListPw44"}], "token": "CfgElse55x"}
        found = known_secrets([], {}, [], MATCHER, config)
        assert set(found) == {"CfgListPw44", "CfgElse55x"}
        note = "used CfgElse55x ok, and CfgListPw44 too"
        assert redact_text(note, known=found) == f"used {REDACTED} ok, and {REDACTED} too"

    def test_a_known_secret_is_hidden_percent_encoded_too(self):
        note = "fetched https://hub.example/?p=Enc%20Secret%231 and Enc+Secret%231"
        hidden = redact_text(note, known=["Enc Secret#1"])
        assert "Enc%20Secret%231" not in hidden
        assert "Enc+Secret%231" not in hidden

    def test_a_script_reading_its_own_config_file_spreads_its_secrets(self, tmp_path):
        from tests.conftest import project_with

        folder = project_with(tmp_path / "proj", "argparse_config")
        (folder / "c.json").write_text(json.dumps({"epochs": 2, "token": "CfgElsewhere55"}))
        proc = run_python(
            folder / "argparse_config.py",
            *("--config", "c.json", "--out", "m-CfgElsewhere55.txt"),
            cwd=folder,
        )
        assert proc.returncode == 0, proc.stderr
        record = (folder / "m-CfgElsewhere55.txt.manifest.json").read_text()
        assert "CfgElsewhere55" not in record  # not in the output's path, nor in argv


class TestSettingsUnderSecretWords:
    @pytest.mark.parametrize(
        "name",
        [
            "include_num_input_tokens_seen",
            "max_prompt_tokens",
            "num_of_input_tokens",
            "total_gen_token",
        ],
    )
    def test_a_count_with_words_between_is_no_secret(self, name):
        assert not MATCHER(name)

    @pytest.mark.parametrize("name", ["hub_token", "input_tokens_secret", "auth_token"])
    def test_a_token_without_a_count_before_it_still_is(self, name):
        assert MATCHER(name)

    @pytest.mark.parametrize(
        "value", ["no", "Yes", "TRUE", "false", "none", "auto", "steps", "epoch"]
    )
    def test_a_setting_word_stays_a_credential_does_not(self, value):
        args = {"push_token_strategy": value, "hub_token": value, "api_key": "hunter2-abc"}
        hidden = redact_args(args, MATCHER)
        assert hidden == {"push_token_strategy": value, "hub_token": value, "api_key": REDACTED}
