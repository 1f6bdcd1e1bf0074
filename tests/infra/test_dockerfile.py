"""The Dockerfile, checked without a Docker engine: what it runs, as whom, and from what.

hadolint (make check-containers) lints it; these tests check it agrees with the code: the
uvicorn flags with `uvicorn_options()`, the liveness probe with the ECS task's, the settings it
sets with `Settings`, the files it copies with the .dockerignore allow-list.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from infra.service import CONTAINER_PORT, LIVENESS
from service.cli import uvicorn_options
from service.config import Settings
from tests.support import dockerfile as df

DIGEST = r"@sha256:[0-9a-f]{64}"
# Tags that had no published digest where they were last pinned (no registry reachable there):
# the next `make pin-images` pins them, and the entry goes. Nothing else may be unpinned.
AWAITING_DIGEST = {"ghcr.io/astral-sh/uv:0.13.9"}


def test_final_stage_is_the_runtime_the_deploy_builds() -> None:
    froms = [i for i in df.instructions() if i.keyword == "FROM"]
    assert froms[-1].stage == "runtime"  # infra/image.py builds target="runtime"


def test_runs_as_a_numeric_non_root_user() -> None:
    runtime = df.final_stage()
    users = [i.value for i in runtime if i.keyword == "USER"]
    assert users, "the runtime stage sets no USER: it would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or int(gid) > 0)
    created = " ".join(i.value for i in runtime if i.keyword == "RUN")
    assert f"--uid {uid}" in created  # the user exists in /etc/passwd


def test_no_secret_is_set_in_the_image() -> None:
    for instruction in df.instructions():
        if instruction.keyword in ("ENV", "ARG"):
            names = [w.partition("=")[0] for w in instruction.words()]
            assert not [n for n in names if re.search(r"KEY|SECRET|PASSWORD|TOKEN", n)], names
    # The allow-list never lets .env (or anything unexpected) into the build context.
    assert df.allowed_in_context() == {
        "Dockerfile",
        ".dockerignore",
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "service",
        "embeddings",
        "data",
        "artifacts",
    }


def test_every_file_it_copies_is_in_the_build_context() -> None:
    allowed = df.allowed_in_context()
    for instruction in df.instructions():
        if instruction.keyword == "COPY" and "from" not in instruction.flags():
            sources = [w for w in instruction.words() if not w.startswith("--")][:-1]
            for source in sources:
                assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"
        for mount in re.findall(r"--mount=type=bind,source=([^,\s]+)", instruction.value):
            assert mount in allowed, f"bind mount {mount}: excluded by .dockerignore"


def test_dependencies_come_from_the_lock_file_without_dev_tools() -> None:
    serving = df.stage("deps") + df.stage("builder")
    syncs = [i for i in serving if i.keyword == "RUN" and "uv sync" in i.value]
    assert len(syncs) == 2
    for sync in syncs:
        command = sync.value[sync.value.index("uv sync") :].split()
        assert "--frozen" in command and "--no-dev" in command
        assert not {"--all-extras", "--extra", "--group", "--all-groups"} & set(command)
    first = syncs[0].value
    assert "--no-install-project" in first  # the heavy layer depends on the lock file only
    assert "source=uv.lock" in first and "source=pyproject.toml" in first
    assert re.fullmatch(
        rf"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+({DIGEST})?", df.global_args()["UV_IMAGE"]
    )


def test_base_image_is_slim_python_of_the_project_version() -> None:
    image = df.global_args()["PYTHON_IMAGE"]
    match = re.fullmatch(rf"python:(\d+\.\d+)(?:\.\d+)?-slim-\w+{DIGEST}", image)
    assert match, image
    pyproject = tomllib.loads((df.ROOT / "pyproject.toml").read_text("utf-8"))
    assert match.group(1) == "3.11" and ">=3.11" in pyproject["project"]["requires-python"]


def test_cmd_is_movie_recs_serve_with_the_production_options() -> None:
    """`movie-recs serve` runs uvicorn with `uvicorn_options()` and exits 0 on SIGTERM
    (plain `uvicorn` re-raises the signal: exit 143). Parsed by the CLI itself, so a misspelt
    option fails here."""
    import typer

    from service.cli import app

    (cmd,) = [i.exec_form() for i in df.final_stage() if i.keyword == "CMD"]
    assert cmd[:2] == ["movie-recs", "serve"]
    command = typer.main.get_command(app)
    serve = command.get_command(command.make_context("movie-recs", ["serve"]), "serve")  # type: ignore[attr-defined]
    params = serve.make_context("serve", cmd[2:]).params
    assert (params["host"], params["port"], params["workers"]) == ("0.0.0.0", CONTAINER_PORT, 1)
    options = uvicorn_options()
    assert options["lifespan"] == "on"  # a model that fails to load fails startup
    assert options["timeout_keep_alive"] > 60  # the ALB's idle timeout
    assert options["access_log"] is False
    exposed = [i.value for i in df.final_stage() if i.keyword == "EXPOSE"]
    assert exposed == [str(CONTAINER_PORT)]


def test_healthcheck_is_the_liveness_probe_the_task_uses() -> None:
    (check,) = [i for i in df.final_stage() if i.keyword == "HEALTHCHECK"]
    command = check.exec_form()
    assert command[:2] == ["/opt/venv/bin/python", "-c"]  # no curl in a slim image
    assert command[2] == LIVENESS  # the ECS container health check runs the same code
    assert "/healthz" in LIVENESS and "/readyz" not in LIVENESS
    start = int(re.search(r"--start-period=(\d+)s", check.value).group(1))  # type: ignore[union-attr]
    assert start >= 120  # uvicorn answers only after the model and the index are loaded


def test_thread_pools_are_pinned_and_every_setting_exists() -> None:
    env = df.env(df.final_stage())
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        assert env[name] == "1"
    assert not {n for n in env if n.startswith("TF_")}  # no TensorFlow to configure
    settings = {k: v for k, v in env.items() if k.startswith("MOVIE_RECS_")}
    assert settings["MOVIE_RECS_OMP_THREADS"] == "1"
    for name in settings:
        field = name.removeprefix("MOVIE_RECS_").lower()
        assert field in Settings.model_fields, f"{name} is not a setting: a typo is ignored"


def test_root_filesystem_can_be_read_only() -> None:
    runtime = df.final_stage()
    assert [i.value for i in runtime if i.keyword == "VOLUME"] == ['["/tmp"]']
    env = df.env(runtime)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == env["TMPDIR"] == "/tmp"
    assert df.env(df.stage("deps"))["UV_COMPILE_BYTECODE"] == "1"  # compiled at build time


def test_image_bakes_one_model_version_where_the_settings_look() -> None:
    assert df.global_args()["MODEL_SOURCE"] == "context"  # the trained, evaluated artifacts
    model = " ".join(i.value for i in df.stage("model") if i.keyword == "RUN")
    assert "/model/latest" in model  # one version, with its own pointer
    copies = [i for i in df.final_stage() if i.keyword == "COPY" and i.flags().get("from")]
    destination = {i.flags()["from"]: i.words()[-1] for i in copies}["model"]
    env = df.env(df.final_stage())
    assert env["MOVIE_RECS_ARTIFACTS_DIR"] == destination
    assert env["MOVIE_RECS_MODEL_VERSION"] == "latest"


def _model_script(tmp_path: Path) -> str:
    (script,) = [i.value for i in df.stage("model") if i.keyword == "RUN"]
    return script.replace("/src/", f"{tmp_path}/src/").replace("/model", f"{tmp_path}/model")


def _artifacts(tmp_path: Path, versions: list[str], latest: str | None) -> None:
    for version in versions:
        (tmp_path / "src" / "artifacts" / version).mkdir(parents=True)
        (tmp_path / "src" / "artifacts" / version / "manifest.json").write_text("{}")
    if latest:
        (tmp_path / "src" / "artifacts" / "latest").write_text(latest + "\n")


@pytest.mark.parametrize(("chosen", "kept"), [("latest", "v2"), ("v1", "v1")])
def test_model_stage_keeps_one_version_with_its_pointer(
    tmp_path: Path, chosen: str, kept: str
) -> None:
    """The model stage's shell script, run by /bin/sh on a fake artifacts directory."""
    _artifacts(tmp_path, ["v1", "v2"], latest="v2")
    subprocess.run(
        ["sh", "-c", _model_script(tmp_path)],
        env={"PATH": os.environ["PATH"], "MODEL_VERSION": chosen},
        check=True,
    )
    assert {p.name for p in (tmp_path / "model").iterdir()} == {kept, "latest"}
    assert (tmp_path / "model" / "latest").read_text() == kept + "\n"
    assert (tmp_path / "model" / kept / "manifest.json").is_file()


def test_model_stage_makes_the_model_readable_by_the_runtime_user(tmp_path: Path) -> None:
    """artifacts/ written under umask 077 (or by an older export, which made them 0700) still
    ends up readable by uid 10001: the image assumes nothing about the build user's umask."""
    _artifacts(tmp_path, ["v1"], latest="v1")
    (tmp_path / "src" / "artifacts" / "v1" / "vocab").mkdir()
    (tmp_path / "src" / "artifacts" / "v1" / "vocab" / "genres.txt").write_text("Drama\n")
    for path in (tmp_path / "src").rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)
    subprocess.run(
        ["sh", "-c", _model_script(tmp_path)],
        env={"PATH": os.environ["PATH"], "MODEL_VERSION": "latest"},
        check=True,
    )
    for path in [tmp_path / "model", *(tmp_path / "model").rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))


def test_the_application_is_readable_by_the_runtime_user() -> None:
    """COPY keeps the build context's modes; a clone made under umask 077 would be 0600."""
    (last_sync,) = [
        i.value
        for i in df.stage("builder")
        if "uv sync --frozen --no-dev " in i.value and "--no-install-project" not in i.value
    ]
    assert "chmod -R a+rX,go-w /app" in last_sync


def test_model_stage_fails_clearly_without_a_trained_model(tmp_path: Path) -> None:
    _artifacts(tmp_path, [], latest=None)
    (tmp_path / "src" / "artifacts").mkdir(parents=True)
    result = subprocess.run(
        ["sh", "-c", _model_script(tmp_path)],
        env={"PATH": os.environ["PATH"], "MODEL_VERSION": "latest"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "make train" in result.stderr


def pulled_images(path: Path = df.DOCKERFILE) -> dict[str, str]:
    """Where the build names an image it pulls -> the reference, with the ARG defaults: the
    `# syntax=` frontend, each FROM and COPY --from that is not an earlier stage."""
    lines = path.read_text("utf-8").splitlines()
    found = {}
    if lines[0].startswith("# syntax="):
        found["# syntax"] = lines[0].removeprefix("# syntax=")
    args = {}
    stages: set[str] = set()
    for instruction in df.instructions(path):
        if instruction.keyword == "ARG" and instruction.stage is None:
            name, _, default = instruction.value.partition("=")
            args[name] = default
        elif instruction.keyword == "FROM":
            written = instruction.words()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], written)
            if image not in stages:
                found[f"FROM {written}"] = image
            if instruction.stage:
                stages.add(instruction.stage)
        elif instruction.keyword == "COPY" and instruction.flags().get("from"):
            source = instruction.flags()["from"]
            if source not in stages:
                found[f"COPY --from={source}"] = source
    return found


def test_every_image_the_build_pulls_is_pinned_by_digest() -> None:
    """A tag moves with every upstream rebuild; a digest is the same bytes on every build."""
    pulled = pulled_images()
    assert {"# syntax", "FROM ${UV_IMAGE}", "FROM ${PYTHON_IMAGE}"} <= set(pulled)
    unpinned = {where: image for where, image in pulled.items() if not re.search(DIGEST, image)}
    assert set(unpinned.values()) <= AWAITING_DIGEST, unpinned
    for image in AWAITING_DIGEST:
        # Pinned since? Then its entry must go, so the test holds the pin from then on.
        assert image in unpinned.values(), f"{image} is pinned now: drop it from AWAITING_DIGEST"
    for image in pulled.values():
        assert re.fullmatch(rf"[a-z0-9./-]+:[\w.-]+({DIGEST})?", image), (
            f"{image}: tag, then digest"
        )


def test_the_bootstrap_uv_is_the_image_uv() -> None:
    """`make` installs the uv the image builds with, so the lock file is read by one version."""
    match = re.fullmatch(r"ghcr\.io/astral-sh/uv:([\d.]+)(?:@.*)?", df.global_args()["UV_IMAGE"])
    assert match
    makefile = (df.ROOT / "Makefile").read_text("utf-8")
    installs = re.findall(r"\.tools/bin/pip install --quiet (uv\S*)", makefile)
    assert installs == [f"uv=={match.group(1)}"]


def test_pin_images_pins_every_pulled_image(tmp_path: Path) -> None:
    """`make pin-images` against a stand-in `crane`: every tag gets the digest its registry
    names, twice over (a re-pin replaces the old digest), and the rest stays byte for byte."""
    original = df.DOCKERFILE.read_text("utf-8")
    (tmp_path / "Dockerfile").write_text(original, "utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    crane = bin_dir / "crane"
    # The digest of the tag (and a round): sha256 of the text, 64 hex digits, like crane's.
    crane.write_text(
        '#!/bin/sh\n[ "$1" = digest ] || exit 2\n'
        'printf "sha256:%s\\n" "$(printf "%s%s" "$2" "$ROUND" | sha256sum | cut -c1-64)"\n'
    )
    crane.chmod(0o755)
    for attempt in ("1", "2"):
        subprocess.run(
            ["make", "--no-print-directory", "-s", "-f", str(df.ROOT / "Makefile"), "pin-images"],
            cwd=tmp_path,
            env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "ROUND": attempt},
            check=True,
            capture_output=True,
            timeout=60,
        )
        pinned = pulled_images(tmp_path / "Dockerfile")
        for where, image in pulled_images().items():
            tag = image.partition("@")[0]
            digest = hashlib.sha256(f"{tag}{attempt}".encode()).hexdigest()
            assert pinned[where] == f"{tag}@sha256:{digest}", where
    changed = (tmp_path / "Dockerfile").read_text("utf-8").splitlines()
    differ = [i for i, line in enumerate(original.splitlines()) if line != changed[i]]
    assert len(differ) == 3  # the syntax line and the two image ARGs, nothing else


def _from(stage: str) -> str:
    """The image or stage that `stage` starts from."""
    (start,) = [i for i in df.instructions() if i.keyword == "FROM" and i.stage == stage]
    return start.words()[0]


def test_training_stages_share_one_layer_with_the_train_extra() -> None:
    """The bundled model (model-train) and `movie-recs retrain` (retrain-builder) build on one
    `uv sync --extra train` layer; the serving stages never install the extra."""
    assert _from("train-deps") == "deps"
    assert _from("model-train") == _from("retrain-builder") == "train-deps"
    (sync,) = [i.value for i in df.stage("train-deps") if "uv sync" in i.value]
    command = sync[sync.index("uv sync") :].split()
    assert {"--frozen", "--no-dev", "--no-install-project"} <= set(command)
    assert command[command.index("--extra") + 1] == "train"
    (project,) = [i.value for i in df.stage("retrain-builder") if "uv sync" in i.value]
    command = project[project.index("uv sync") :].split()
    assert {"--frozen", "--no-dev"} <= set(command) and "--no-install-project" not in command
    assert command[command.index("--extra") + 1] == "train"
    assert "chmod -R a+rX,go-w /app" in project  # readable by the runtime user
    # The same packages left out as the serving image's (libclang): no reinstall, no surprise.
    (deps,) = [i.value for i in df.stage("deps") if "uv sync" in i.value]
    serving = set(re.findall(r"--no-install-package (\S+)", deps))
    assert serving == {"libclang"}
    for training in (sync, project):
        assert set(re.findall(r"--no-install-package (\S+)", training)) == serving


def test_retrain_stage_runs_retrain_like_the_runtime_runs_serve() -> None:
    """Same user, read-only root (/tmp only), the same baked model where the settings look;
    no thread pins (training uses the task's cores); `movie-recs retrain` by default."""
    retrain, runtime = df.stage("retrain"), df.final_stage()
    assert _from("retrain") == _from("runtime") == "${PYTHON_IMAGE}"
    (cmd,) = [i.exec_form() for i in retrain if i.keyword == "CMD"]
    assert cmd == ["movie-recs", "retrain"]
    users = [i.value for i in retrain if i.keyword == "USER"]
    assert users == [i.value for i in runtime if i.keyword == "USER"]
    created = " ".join(i.value for i in retrain if i.keyword == "RUN")
    assert f"--uid {users[0].partition(':')[0]}" in created
    assert [i.value for i in retrain if i.keyword == "VOLUME"] == ['["/tmp"]']
    env, serving = df.env(retrain), df.env(runtime)
    assert env["HOME"] == env["TMPDIR"] == "/tmp" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"] == serving["PATH"]
    for name in ("MOVIE_RECS_ARTIFACTS_DIR", "MOVIE_RECS_MODEL_VERSION"):
        assert env[name] == serving[name]
    assert not {"OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "MOVIE_RECS_TF_THREADS"} & set(env)
    for name in env:
        if name.startswith("MOVIE_RECS_"):
            assert name.removeprefix("MOVIE_RECS_").lower() in Settings.model_fields, name
    copies = {
        i.flags()["from"]: i.words()[-1]
        for i in retrain
        if i.keyword == "COPY" and i.flags().get("from")
    }
    assert copies["model"] == env["MOVIE_RECS_ARTIFACTS_DIR"]
    (venv,) = [i for i in retrain if i.keyword == "COPY" and "/opt/venv" in i.value]
    assert venv.flags()["from"] == "retrain-builder"
