"""Build a sweep's wandb page from what its runs logged. See docs/evaluation.md, "The dashboard".

    python dashboard.py multirun/<sweep>                     # writes <sweep>/dashboard.json
    python dashboard.py multirun/<sweep> --publish --entity <you>   # saves it as a wandb report
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from darling.eval.dashboard import dashboard_spec, to_report
from darling.eval.wandb_files import read_runs

log = logging.getLogger("dashboard")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="the sweep's directory (multirun/...)")
    parser.add_argument("--out", type=Path, help="default: <sweep_dir>/dashboard.json")
    parser.add_argument("--title", help="the page's title (default: from the wandb group)")
    parser.add_argument("--publish", action="store_true",
                        help="save the page as a wandb report (needs a network and wandb login)")
    parser.add_argument("--entity", help="with --publish: the wandb entity of the project")
    args = parser.parse_args(argv)
    spec = dashboard_spec(read_runs(args.sweep_dir), args.title)
    out = args.out or args.sweep_dir / "dashboard.json"
    out.write_text(json.dumps(spec, indent=2) + "\n")
    panels = sum(len(s["panels"]) for s in spec["sections"])
    log.info("wrote %s: %d panels over %d runs of group %r", out, panels, len(spec["runs"]),
             spec["group"])
    if args.publish:
        if not args.entity:
            parser.error("--publish needs --entity <your wandb entity>")
        report = to_report(spec, args.entity)
        report.save()
        log.info("published the dashboard: %s", report.url)
    else:
        log.info("to publish: upload the runs (offline ones: wandb sync "
                 "%s/*/wandb/offline-run-*), then python dashboard.py %s --publish "
                 "--entity <your wandb entity>",
                 args.sweep_dir, args.sweep_dir)
    return spec


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    main()
