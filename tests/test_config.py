import dataclasses

import pytest

from klick.config import Config, ConfigError, load_config
from tests.conftest import REPO


def test_no_file_means_every_default(klick_home):
    cfg = load_config()
    assert cfg.source is None
    assert cfg.reader.mode == "slot" and cfg.reader.settle_ms == 80 and cfg.reader.grace_ms == 1200
    assert cfg.locale == "sv"
    assert cfg.paths.registry == klick_home / "cards.yaml"
    assert cfg.paths.usage_db == klick_home / "usage.db"
    assert all(origin == "default" for origin in cfg.origins.values())


def test_shipped_klick_yaml_is_valid_and_complete():
    cfg = load_config(REPO / "config" / "klick.yaml")
    text = (REPO / "config" / "klick.yaml").read_text()
    # Every setting is written out (and so commented) in the shipped file.
    for dotted, _ in cfg.flat():
        if dotted == "paths.home":  # derived, not a setting
            continue
        assert dotted.split(".")[-1] + ":" in text, dotted


def test_klick_home_file_is_found_and_origins_name_lines(klick_home):
    (klick_home / "klick.yaml").write_text("# settings\nlocale: en\nreader:\n  mode: tap\n")
    cfg = load_config()
    assert cfg.source == klick_home / "klick.yaml"
    assert cfg.locale == "en" and cfg.reader.mode == "tap"
    assert cfg.origins["reader.mode"] == "klick.yaml:4"
    assert cfg.origins["reader.driver"] == "default"


def test_explicit_config_beats_klick_home(klick_home, tmp_path):
    (klick_home / "klick.yaml").write_text("locale: en\n")
    other = tmp_path / "other.yaml"
    other.write_text("locale: sv\npaths:\n  registry: mine.yaml\n")
    cfg = load_config(other)
    assert cfg.locale == "sv"
    assert cfg.paths.registry == tmp_path / "mine.yaml"  # relative to the file's folder


def test_xdg_is_searched_after_klick_home(monkeypatch, tmp_path):
    monkeypatch.delenv("KLICK_HOME")
    xdg = tmp_path / "xdg-config" / "klick"
    xdg.mkdir(parents=True)
    (xdg / "klick.yaml").write_text("text_size: large\n")
    cfg = load_config()
    assert cfg.text_size == "large" and cfg.text_scale == 1.25


def test_error_names_file_line_and_fix(klick_home):
    lines = ["reader:"] + [f"  # comment {i}" for i in range(10)] + ["  mode: slto"]
    (klick_home / "klick.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as info:
        load_config()
    assert str(info.value.problems[0]).endswith('klick.yaml:12: reader.mode must be "slot" or "tap", not "slto"')


def test_every_problem_is_reported_in_line_order(klick_home):
    (klick_home / "klick.yaml").write_text(
        "reader:\n  settle_ms: fast\n  grace: 3\nlocale: de\npilot:\n  enrolled: maybe\n  consent_date: 23/11/2026\n"
        "browser:\n  command: chromium --kiosk\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config()
    text = [str(p) for p in info.value.problems]
    assert [p.line for p in info.value.problems] == [2, 3, 4, 6, 7, 9]
    assert "did you mean 'grace_ms'" in text[1]
    assert "never runs a shell" in text[5]


def test_config_is_frozen():
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.locale = "en"  # type: ignore[misc]


def test_cli_config_error_exits_2(klick, klick_home):
    (klick_home / "klick.yaml").write_text("reader:\n  mode: slto\n")
    result = klick("config", "check")
    assert result.returncode == 2
    assert 'klick.yaml:2: reader.mode must be "slot" or "tap", not "slto"' in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_config_show_names_sources(klick, klick_home):
    (klick_home / "klick.yaml").write_text("locale: en\npilot:\n  export_key: secret-key-for-the-pilot\n")
    result = klick("config", "show")
    assert result.returncode == 0
    assert "klick.yaml:1" in result.stdout and "[default]" in result.stdout
    assert "secret-key-for-the-pilot" not in result.stdout


def test_cli_missing_config_file(klick):
    result = klick("config", "check", "--config", "/nonexistent/klick.yaml")
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_short_export_key_is_refused_with_how_to_make_one(klick_home):
    (klick_home / "klick.yaml").write_text("pilot:\n  device_name: hbg-01\n  export_key: secret-key\n")
    with pytest.raises(ConfigError) as info:
        load_config()
    ((problem,),) = [info.value.problems]
    assert problem.line == 3 and problem.message.startswith("pilot.export_key is 10 characters long")
    assert 'python3 -c "import secrets; print(secrets.token_urlsafe(24))"' in problem.message
    (klick_home / "klick.yaml").write_text('pilot:\n  export_key: "sixteen chars ok"\n')
    assert load_config().pilot.export_key == "sixteen chars ok"
    (klick_home / "klick.yaml").write_text('pilot:\n  export_key: ""\n')
    assert load_config().pilot.export_key == ""  # none given: exports say to set one


def test_call_servers_with_a_user_name_or_password_are_refused(klick_home):
    (klick_home / "klick.yaml").write_text(
        "calls:\n  allowed_servers:\n    - https://meet.example.se\n    - https://u:pw@evil.example\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config()
    ((problem,),) = [info.value.problems]
    assert problem.line == 4 and "user name or password" in problem.message


def test_direction_overrides_are_refused_in_settings_text(klick_home):
    (klick_home / "klick.yaml").write_text('help_contact: "Ring \\u202e0701234567"\n')
    with pytest.raises(ConfigError) as info:
        load_config()
    assert info.value.problems[0].message == "help_contact holds a hidden character that turns text around (U+202E); retype it"


def test_appliance_settings_document_the_call_server_allow_list():
    text = (REPO / "config" / "appliance" / "klick.yaml").read_text()
    assert "allowed_servers:" in text and "--allow-server" in text
    cfg = load_config(REPO / "config" / "appliance" / "klick.yaml", env={})
    assert cfg.calls.allowed_servers == ()
