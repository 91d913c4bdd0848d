"""The Docker image's files, assembled as deploy/Dockerfile says (Docker's daemon is not needed):
the API started from them, as the image's command starts it, answers every endpoint that its
status page advertises, /openapi.json included."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from installkit import ROOT, bare_venv, pip_install

from runtime.signing import signed_headers
from tests.faults.servers import free_port, stop_process

pytestmark = pytest.mark.integration
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
KEY = "image-files-test-key-0123456789"


@dataclass
class Stage:
    name: str
    root: Path
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    cmd: list[str] = field(default_factory=list)

    def path(self, where: str) -> Path:
        """A path of the stage's file system inside its folder of this test."""
        absolute = where if where.startswith("/") else f"{self.workdir.rstrip('/')}/{where}"
        return self.root / absolute.lstrip("/")


def instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line and not line.startswith("#")]


def _copy(stage: Stage, args: str, stages: dict[str, Stage]) -> None:
    words = shlex.split(args)
    source_root = ROOT
    options = [w for w in words if w.startswith("--")]
    for option in options:
        if option.startswith("--from="):
            source_stage = stages[option.split("=", 1)[1]]
            source_root = source_stage.root
    *sources, dest = [w for w in words if not w.startswith("--")]
    for source in sources:
        origin = source_root / source.lstrip("/")
        target = stage.path(dest)
        if dest.endswith("/") or len(sources) > 1:
            target = target / origin.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir() and not origin.is_symlink():
            shutil.copytree(origin, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(origin, target, follow_symlinks=False)


def _run(stage: Stage, command: str) -> None:
    """The RUN steps that shape the service's files: a venv, and pip installing the project.
    Packages from the lock are not installed: the venv sees the test's own (installkit)."""
    venv = re.search(r"python -m venv (\S+)", command)
    if venv:
        bare_venv(stage.path(venv.group(1)))
    for step in command.split("&&"):
        words = shlex.split(step)
        if len(words) > 2 and words[0].endswith("/bin/pip") and words[1] == "install" \
                and words[-1] == ".":
            python = stage.path(words[0]).with_name("python")
            done = pip_install(python, stage.path("."))
            assert done.returncode == 0, done.stderr


def assemble(tmp: Path) -> Stage:
    """Every stage of the Dockerfile in ``tmp``; the last one (the image) is returned."""
    stages: dict[str, Stage] = {}
    stage = None
    for op, args in instructions(DOCKERFILE.read_text()):
        if op == "FROM":
            name = args.split()[-1] if " as " in args.lower() else str(len(stages))
            stage = stages[name] = Stage(name, tmp / f"stage-{name}")
            stage.root.mkdir()
        elif op == "WORKDIR":
            stage.workdir = args.strip()
            stage.path(".").mkdir(parents=True, exist_ok=True)
        elif op == "COPY":
            _copy(stage, args, stages)
        elif op == "RUN":
            _run(stage, args)
        elif op == "ENV":
            stage.env.update(dict(w.split("=", 1) for w in shlex.split(args)))
        elif op == "CMD":
            stage.cmd = json.loads(args)
    return stage


def _command(image: Stage, command: list[str]) -> list[str]:
    """``command`` as the image runs it: a program on its PATH inside the assembled files, else
    a module of its Python (gunicorn is a package of the lock, which the test does not copy)."""
    for folder in image.env.get("PATH", "").split(":"):
        found = image.path(folder) / command[0]
        if folder.startswith("/") and found.exists():
            return [str(found), *command[1:]]
    python = image.path("/opt/venv/bin/python")
    return [str(python), "-m", *command] if python.exists() else command


def _compose_web_command() -> list[str]:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"][
        "command"]

EXPLORER_PASSWORD = "explorer-password-0123456789"


@pytest.fixture(params=["the image's CMD", "docker-compose's web command"])
def image_api(request, tmp_path, real_redis_url):
    image = assemble(tmp_path)
    command = image.cmd if request.param.endswith("CMD") else _compose_web_command()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_", "PYTHONPATH"))}
    env.update({k: v for k, v in image.env.items() if k != "PATH"})
    env.update({"ML_TOTARA_URL": "http://127.0.0.1:9", "ML_TOTARA_KEY": KEY,
                "ML_REDIS_URL": real_redis_url, "ML_BIND": f"127.0.0.1:{port}",
                "ML_MODELS_DIR": str(tmp_path / "models"), "ML_LOGS_DIR": str(tmp_path / "logs"),
                "WEB_CONCURRENCY": "1", "ML_EXPLORER_PASSWORD": EXPLORER_PASSWORD})
    log = (tmp_path / "api.log").open("w")
    process = subprocess.Popen(_command(image, command), cwd=image.path("."), env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(url + "/livez", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the image's API did not start:\n" + (tmp_path / "api.log")
                            .read_text())
            time.sleep(0.1)
        yield url, image
    finally:
        stop_process(process)
        log.close()


def test_the_image_answers_every_endpoint_its_status_page_advertises(image_api):
    url, image = image_api
    page = requests.get(url + "/", timeout=5)
    assert page.status_code == 200
    advertised = sorted(set(re.findall(r"GET (/[A-Za-z0-9_./-]*)", page.text)))
    assert "/openapi.json" in advertised and "/user-items" in advertised
    for path in advertised:
        # When each is called as Totara calls (signed), / Then it answers, not a 404 or a 500
        answer = requests.get(url + path, headers=signed_headers(KEY), timeout=5)
        assert answer.status_code not in (404, 500), (path, answer.status_code, answer.text)
    openapi = requests.get(url + "/openapi.json", timeout=5)
    assert openapi.status_code == 200 and openapi.json()["openapi"].startswith("3.")
    # The explorer's pages come from templates the image must carry beside the code
    explorer = requests.get(url + "/explore", auth=("operator", EXPLORER_PASSWORD), timeout=5)
    assert explorer.status_code == 200 and "<html" in explorer.text.lower()
    # and the service ran from its installed package: the image holds no checkout
    assert not image.path("docs").exists() and not image.path("api").exists()
