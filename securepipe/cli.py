"""The ``securepipe`` command line: notebooks, voices, warmup."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="securepipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    nb = sub.add_parser("notebooks", help="execute every notebook into a folder, with HTML")
    nb.add_argument("--out", default="build", help="output folder (default: build)")
    nb.add_argument("--dir", default=None, help="notebook folder (default: notebooks/)")
    nb.add_argument("--no-html", action="store_true", help="skip the HTML copies")

    sub.add_parser("warmup", help="compile librosa's numba kernels into the project cache")

    voices = sub.add_parser("voices", help="regenerate the synthetic voice set")
    voices.add_argument("args", nargs=argparse.REMAINDER, help="see `securepipe voices -h`")

    args = parser.parse_args(argv)
    if args.command == "notebooks":
        from securepipe import notebooks

        return notebooks.main(args.out, args.dir, html=not args.no_html)
    if args.command == "warmup":
        from securepipe import warmup

        return warmup.main()
    from securepipe import voices as voices_module

    return voices_module.main(args.args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
