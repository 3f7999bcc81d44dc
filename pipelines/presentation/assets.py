"""The offline reveal.js of the deck: fetched once from npm, copied next to the HTML.

nbconvert's reveal exporter loads reveal.js, require.js, jQuery, MathJax and font-awesome from
CDNs. Tarmac's deck loads none of them: the template ``templates/tarmac`` refers only to
``reveal.js/`` next to the HTML, and this module puts it there.

- :func:`provision` fetches the npm package ``reveal.js`` (:data:`REVEAL_VERSION`, a 4.x) with
  npm's own client (``npm pack``), checks its integrity against :data:`REVEAL_INTEGRITY` and
  unpacks it into ``~/.cache/tarmac/reveal.js-<version>/`` (``$TARMAC_CACHE`` moves it). Once
  there, nothing is fetched again: later builds work without any network.
- :func:`install` copies the few files a deck needs (:data:`NEEDED`: the core, the ``white``
  theme and its Source Sans Pro fonts, the speaker-notes plugin) into
  ``<out>/reveal.js/``, so ``tarmac.slides.html`` opens from disk, on an air-gapped machine.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from pipelines.core import exceptions

REVEAL_VERSION = "4.6.1"
# npm's ``integrity`` of reveal.js-4.6.1.tgz (``npm view reveal.js@4.6.1 dist.integrity``)
REVEAL_INTEGRITY = (
    "sha512-1CW0auaXNPmwmvQ7TwpszwVxMi2Xr5cTS3J3EBC/HHgbPF32Dn7aiu/"
    "LKWDOGjMbaDwKQiGmfqcoGQ74HUHCMw=="
)
# what the deck loads, relative to the package root
NEEDED = (
    "dist/reveal.css",
    "dist/reveal.js",
    "dist/theme/white.css",
    "dist/theme/fonts/source-sans-pro",
    "plugin/notes/notes.js",
    "LICENSE",
)


class AssetError(exceptions.ProvisionError):
    """reveal.js could not be fetched or is incomplete (exit code 3, like every provision)."""


def cache_root() -> Path:
    """``$TARMAC_CACHE`` or ``~/.cache/tarmac`` (where the stack's jars and binaries live too)."""
    return Path(os.environ.get("TARMAC_CACHE", Path.home() / ".cache" / "tarmac"))


def reveal_home(version: str = REVEAL_VERSION) -> Path:
    """The unpacked package in the cache (``package/`` of the npm tarball)."""
    return cache_root() / f"reveal.js-{version}"


def _integrity(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def provision(version: str = REVEAL_VERSION, integrity: str | None = REVEAL_INTEGRITY) -> Path:
    """The cached reveal.js ``version``, fetched with ``npm pack`` the first time.

    Raises :class:`AssetError` with what to do when npm is missing, the registry cannot be
    reached, or the tarball does not match ``integrity``.
    """
    home = reveal_home(version)
    if (home / ".complete").exists():
        return home
    npm = shutil.which("npm")
    if npm is None:
        raise AssetError(
            f"reveal.js {version} is not in {home} and `npm` is not installed: install Node.js "
            "and npm (Debian: apt-get install npm), then run `make slides` again"
        )
    with tempfile.TemporaryDirectory(prefix="tarmac-reveal-") as tmp:
        proc = subprocess.run(
            [npm, "pack", f"reveal.js@{version}", "--pack-destination", tmp, "--loglevel", "error"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        tarballs = list(Path(tmp).glob("reveal.js-*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise AssetError(
                f"`npm pack reveal.js@{version}` failed ({proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-800:]}; the npm registry must be "
                "reachable once (later builds use the cache)"
            )
        tarball = tarballs[0]
        if integrity and _integrity(tarball) != integrity:
            raise AssetError(f"{tarball.name} does not match its npm integrity {integrity}")
        partial = home.with_name(home.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(tarball) as tar:
            tar.extractall(partial, filter="data")
        shutil.rmtree(home, ignore_errors=True)
        (partial / "package").rename(home)
        shutil.rmtree(partial, ignore_errors=True)
    missing = [n for n in NEEDED if not (home / n).exists()]
    if missing:
        raise AssetError(f"reveal.js {version} in {home} lacks {missing}")
    (home / ".complete").write_text(version + "\n")
    return home


def install(out_dir: Path, home: Path | None = None) -> Path:
    """Copy :data:`NEEDED` from the cache into ``<out_dir>/reveal.js/``; return that folder."""
    home = home or provision()
    target = out_dir / "reveal.js"
    for name in NEEDED:
        src, dst = home / name, target / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
    return target
