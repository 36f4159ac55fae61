"""Render pullguard's install with its image named, and apply it or write it as a release manifest.

`make install IMAGE=host/repo:tag [KUBECONFIG=...]`: render manifests/ with IMAGE as its `images:` entry and apply
it (and the policy, only when the cluster has none: the policy is the operator's after that).
`make release IMAGE=host/repo:tag`: write dist/install.yaml (the install) and dist/policy.yaml (the default policy,
applied on its own).

The overlay this writes is manifests/kustomization.yaml itself with the image set: the same `resources` and the same
image guard, so `make install` renders exactly what `kubectl apply -k manifests/` would once its image is named.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from policies.image.reference import InvalidReference, parse

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"
IMAGE_HINT = "name the image you pushed (make push IMAGE=...): IMAGE=host/repo:tag or IMAGE=host/repo@sha256:..."


class UsageError(Exception):
    pass


def images_entry(image: str) -> dict[str, str]:
    """The kustomize `images:` entry that sets the `pullguard` placeholder to `image`."""
    if not image:
        raise UsageError(f"no image named: {IMAGE_HINT}")
    try:
        reference = parse(image)
    except InvalidReference as exc:
        why = str(exc) or type(exc).__name__
        raise UsageError(f"IMAGE={image!r} is not an image reference ({why}): {IMAGE_HINT}") from None
    if not reference.domain:  # a bare name means Docker Hub's library: never where a team pushes pullguard
        raise UsageError(f"IMAGE={image!r} names no registry: {IMAGE_HINT}")
    if reference.tag is None and reference.digest is None:
        raise UsageError(f"IMAGE={image!r} has no tag or digest (latest is not an install): {IMAGE_HINT}")
    entry = {"name": "pullguard", "newName": reference.name}
    if reference.digest is not None:
        entry["digest"] = reference.digest
    else:
        entry["newTag"] = str(reference.tag)
    return entry


def overlay(directory: Path, image: str, source: Path = MANIFESTS) -> Path:
    """`source`'s kustomization (manifests/, or certs/cert-manager/) with its resources made relative to `directory`
    and the image set."""
    kustomization: dict[str, Any] = yaml.safe_load((source / "kustomization.yaml").read_text())
    kustomization["resources"] = [_resource(source / r, directory) for r in kustomization["resources"]]
    kustomization["images"] = [images_entry(image)]
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return directory


def _resource(path: Path, directory: Path) -> str:
    """A directory is referred to where it is; a file is copied (kustomize loads no file outside its root)."""
    if path.is_dir():
        return os.path.relpath(path, directory)
    shutil.copyfile(path, directory / path.name)
    return path.name


def kubectl(args: list[str], command: str, kubeconfig: str | None, stdin: str | None = None) -> str:
    prefix = [command, *([f"--kubeconfig={kubeconfig}"] if kubeconfig else [])]
    done = subprocess.run([*prefix, *args], input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UsageError(f"{' '.join(prefix + args[:2])}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def render(image: str, command: str, source: Path = MANIFESTS) -> str:
    with tempfile.TemporaryDirectory(prefix="pullguard-install-") as tmp:
        return kubectl(["kustomize", str(overlay(Path(tmp), image, source))], command, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="", help="host/repo:tag or host/repo@sha256:... (make IMAGE=...)")
    parser.add_argument("--kubectl", default="kubectl", help="the kubectl to run (make KUBECTL=...)")
    parser.add_argument("--kubeconfig", default=None, help="the cluster to install into (default: kubectl's)")
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=MANIFESTS,
        help="the install to render: manifests (default) or certs/cert-manager (make INSTALL_FROM=...)",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--apply", action="store_true", help="apply the install (and the policy if none exists)")
    target.add_argument("--out", type=Path, help="write the release manifests into this directory")
    args = parser.parse_args(argv)
    try:
        install = render(args.image, args.kubectl, args.source.resolve())
        policy = kubectl(["kustomize", str(MANIFESTS / "policy")], args.kubectl, None)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "install.yaml").write_text(install)
            (args.out / "policy.yaml").write_text(policy)
            print(f"wrote {args.out / 'install.yaml'} ({args.image}) and {args.out / 'policy.yaml'}")
            return 0
        sys.stdout.write(kubectl(["apply", "-f", "-"], args.kubectl, args.kubeconfig, stdin=install))
        if kubectl(["get", "configmap", "-n", "pullguard", "--ignore-not-found", "-o", "name", "pullguard-policy"],
                   args.kubectl, args.kubeconfig).strip():  # fmt: skip
            print("configmap/pullguard-policy kept (the operator's: edit it, the install never resets it)")
        else:
            sys.stdout.write(kubectl(["create", "-f", "-"], args.kubectl, args.kubeconfig, stdin=policy))
    except UsageError as exc:
        print(f"pullguard install: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
