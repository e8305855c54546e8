"""`vae-lab train --help` (and eval, sweep): the config groups a user picks from and the main keys with
their defaults and meaning, read from the yaml files themselves (their comments are the
documentation), so the help cannot drift from the configs. Hydra's full help: --hydra-help."""

import re
from pathlib import Path

from vae_lab.compose import config_dir

# A defaults-list entry: "  - group: option   # what the group is"
DEFAULTS_ENTRY = re.compile(r"^\s+- (\w+): (\w+)\s*(?:#\s*(.*))?$")
# A top-level key of a yaml file: "key: value   # what it means"
TOP_KEY = re.compile(r"^(\w+):(.*?)(?:\s+#\s*(.*))?$")
HIDDEN_KEYS = {"defaults", "name", "hydra"}

USAGE = {
    "train": "vae-lab train [GROUP=OPTION ...] [KEY=VALUE ...]",
    "sweep": "vae-lab sweep [GROUP=OPTION ...] [KEY=V1,V2,... ...]   (a Hydra multirun of train)",
    "eval": "vae-lab eval run_dir=RUN [KEY=VALUE ...]",
}


def groups(main: Path) -> list[tuple[str, str, str]]:
    """(group, default option, description) for each group the main config's defaults list picks."""
    found = []
    for line in main.read_text().splitlines():
        entry = DEFAULTS_ENTRY.match(line)
        if entry and (main.parent / entry.group(1)).is_dir():
            found.append((entry.group(1), entry.group(2), entry.group(3) or ""))
    return found


def keys(path: Path, prefix: str = "") -> list[tuple[str, str]]:
    """(key, meaning) of each documented top-level key of a yaml file; a comment continued on the
    lines below a key (indented, comment only) is part of its meaning."""
    found: list[tuple[str, str]] = []
    continuing = False
    for line in path.read_text().splitlines():
        key = TOP_KEY.match(line)
        if key and key.group(1) not in HIDDEN_KEYS and key.group(2).strip() and key.group(3):
            found.append((prefix + key.group(1), key.group(3)))
            continuing = True
        elif continuing and line.startswith(" ") and line.strip().startswith("#"):
            found[-1] = (found[-1][0], f"{found[-1][1]} {line.strip().lstrip('#').strip()}")
        else:
            continuing = False
    return found


def value(config, key: str) -> str:
    """A key's value in the composed config, as one would type it on the command line."""
    from omegaconf import OmegaConf

    try:
        found = OmegaConf.select(config, key, throw_on_missing=False)
    except Exception:  # noqa: BLE001  an interpolation that cannot resolve here: show it as written
        found = OmegaConf.select(config, key, throw_on_resolution_failure=False)
    if found is None:
        return "null" if OmegaConf.is_missing(config, key) is False else "???"
    if OmegaConf.is_config(found):
        found = OmegaConf.to_container(found)
    return str(found).lower() if isinstance(found, bool) else str(found).replace(" ", "")


def help_text(command: str, config_name: str) -> str:
    root = config_dir()
    main = root / f"{config_name}.yaml"
    lines = [f"usage: {USAGE[command]}", ""]
    picked = groups(main)
    if picked:
        lines.append("config groups (GROUP=OPTION; * marks the default):")
        for group, default, about in picked:
            options = sorted(p.stem for p in (root / group).glob("*.yaml"))
            listed = ", ".join(f"{o}*" if o == default else o for o in options)
            lines.append(f"  {group:<15} {listed}")
            if about:
                lines.append(f"  {'':<15} {about}")
        lines.append("")
    lines.append("main keys (KEY=VALUE; default, then meaning):")
    documented = keys(main)
    for group, default, _ in picked:
        if group in ("model", "backbone", "data", "trainer", "eval"):
            documented += keys(root / group / f"{default}.yaml", f"{group}.")
    composed = composed_config(config_name)
    settings = [(f"{k}={value(composed, k)}", about) for k, about in documented]
    width = max(len(setting) for setting, _ in settings)
    lines += [f"  {setting:<{width}}  {about}" for setting, about in settings]
    lines += ["", "other model types' keys: conf/model/<type>.yaml; every key and its value: "
              f"vae-lab {command} --cfg job; Hydra's own options: --hydra-help"]
    return "\n".join(lines)


def composed_config(config_name: str):
    """The command's config as it composes with no overrides (its values are the defaults shown)."""
    from hydra import compose, initialize_config_dir

    from vae_lab.compose import store_schemas

    store_schemas()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose(config_name)
