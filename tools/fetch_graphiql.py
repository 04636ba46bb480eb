"""Vendor GraphiQL's browser files into oneScreen/static/graphiql/vendor/, at pinned versions, checked by hash.

GraphiQL (demo mode's developer tool at GET /graphql) must work offline and under the service's CSP, so the
page loads its scripts from the package, never from a CDN. This script fetches each pinned npm package's
tarball from the npm registry, checks it against the registry's sha512 integrity pinned here, and extracts
the files the page needs with their licences, checking each file's sha384 too. The versions and the file
hashes are those strawberry-graphql's own GraphiQL page pins as subresource integrity (0.341.2). The files
are committed, so a clone works offline; run this to fetch them again, or with --check (offline) to verify
the committed files (tests/test_graphiql.py does).

    python tools/fetch_graphiql.py [--check]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "oneScreen" / "static" / "graphiql" / "vendor"
REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the npm registry's dist.integrity of the tarball
    files: tuple[tuple[str, str, str], ...]  # (path in the tarball's package/, path under vendor/, sha384 SRI)

    @property
    def tarball(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"


MIT_FB = "sha384-dIN5gxuW3odCH42AKpxql36fRQlrVsjCi4EJgGC2Ty8Ihkcq9cdrChEZpKhSAfks"  # MIT, Facebook, Inc.
MIT_GRAPHQL = "sha384-9JPX1agGTIUB7wtQt2kO3PUO7clmCJp+9e50VMjw1yd8briI77AZnMDBz5VcerBH"  # MIT, GraphQL Contributors

PACKAGES = (
    Package("react", "18.2.0",
            "sha512-/3IjMdb2L9QbBdWiW5e3P2/npwMBaU9mHCSCUzNln0ZCYbcfTsGbTJrU/kGemdH2IWmB2ioZ+zkxtmq6g09fGQ==", (
                ("umd/react.production.min.js", "react/react.production.min.js",
                 "sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8"),
                ("LICENSE", "react/LICENSE", MIT_FB))),
    Package("react-dom", "18.2.0",
            "sha512-6IMTriUmvsjHUjNtEDudZfuDQUoWXVxKHhlEGSk81n4YFS+r/Kl99wXiwlVXtPBtJenozv2P+hxDsw9eA7Xo6g==", (
                ("umd/react-dom.production.min.js", "react-dom/react-dom.production.min.js",
                 "sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh"),
                ("LICENSE", "react-dom/LICENSE", MIT_FB))),
    Package("graphiql", "3.8.3",
            "sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==", (
                ("graphiql.min.js", "graphiql/graphiql.min.js",
                 "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie"),
                ("graphiql.min.css", "graphiql/graphiql.min.css",
                 "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM"),
                ("LICENSE", "graphiql/LICENSE", MIT_GRAPHQL),
                # @graphiql/plugin-explorer comes from the same repository (graphql/graphiql, MIT) but its
                # tarball carries no LICENSE file: the repository's, as the graphiql package ships it
                ("LICENSE", "graphiql-plugin-explorer/LICENSE", MIT_GRAPHQL))),
    Package("@graphiql/plugin-explorer", "1.0.2",
            "sha512-9j+kg2UjtLZD5EBmGjeWHkoVVxtbShYg2DzbUVebibnZYZM/iMBEF4vaccXJIAm5KaomIPLx0aoNs4LbODyc3Q==", (
                ("dist/index.umd.js", "graphiql-plugin-explorer/index.umd.js",
                 "sha384-2oonKe47vfHIZnmB6ZZ10vl7T0Y+qrHQF2cmNTaFDuPshpKqpUMGMc9jgj9MLDZ9"),
                ("dist/style.css", "graphiql-plugin-explorer/style.css",
                 "sha384-5DFJlDPW2tSATRbM8kzoP1j194jexLswuNmClWoRr2Q0x7R68JIQzPHZ02Faktwi"))),
    Package("graphiql-explorer", "0.9.0",  # bundled into the explorer plugin's UMD file: its licence
            "sha512-fZC/wsuatqiQDO2otchxriFO0LaWIo/ovF/CQJ1yOudmY0P7pzDiP+l9CEHUiWbizk3e99x6DQG4XG1VxA+d6A==", (
                ("LICENSE", "graphiql-plugin-explorer/LICENSE.graphiql-explorer", MIT_FB),)),
)


def sri(data: bytes, algorithm: str = "sha384") -> str:
    return f"{algorithm}-{base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def fetch(pkg: Package) -> dict[str, bytes]:
    """The pinned files of one package, from its tarball, every hash checked; raises ValueError on a mismatch."""
    with urllib.request.urlopen(pkg.tarball, timeout=120) as resp:
        tarball = resp.read()
    algorithm = pkg.integrity.split("-", 1)[0]
    if sri(tarball, algorithm) != pkg.integrity:
        raise ValueError(f"{pkg.tarball}: integrity {sri(tarball, algorithm)} is not the pinned {pkg.integrity}")
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for src, dest, digest in pkg.files:
            member = tar.extractfile(f"package/{src}")
            if member is None:
                raise ValueError(f"{pkg.name}@{pkg.version} has no {src}")
            data = member.read()
            if sri(data) != digest:
                raise ValueError(f"{pkg.name}@{pkg.version} {src}: {sri(data)} is not the pinned {digest}")
            out[dest] = data
    return out


def check(vendor: Path = VENDOR) -> list[str]:
    """Problems with the committed files (missing, or not the pinned bytes); empty when all is well."""
    problems = []
    for pkg in PACKAGES:
        for _src, dest, digest in pkg.files:
            path = vendor / dest
            if not path.is_file():
                problems.append(f"{path}: missing ({pkg.name}@{pkg.version}; python tools/fetch_graphiql.py)")
            elif sri(path.read_bytes()) != digest:
                problems.append(f"{path}: not the pinned {pkg.name}@{pkg.version} file ({digest})")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tools/fetch_graphiql.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only verify the committed files (offline)")
    args = p.parse_args(argv)
    if not args.check:
        files: dict[str, bytes] = {}
        for pkg in PACKAGES:
            files.update(fetch(pkg))  # everything is checked before anything is written
        for dest, data in files.items():
            (VENDOR / dest).parent.mkdir(parents=True, exist_ok=True)
            (VENDOR / dest).write_bytes(data)
        for pkg in PACKAGES:
            print(f"{pkg.name}@{pkg.version}: {', '.join(d for _s, d, _h in pkg.files)}")
    problems = check()
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
