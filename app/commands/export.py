"""`coplay export`: an experiment's recordings and database as flat tables (CSV, NPZ or Parquet)."""
from __future__ import annotations

import argparse

from app.analysis.export import FORMATS, export, summary_lines


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="turn recordings and the database into per-step tables (CSV, NPZ or Parquet)",
        description="Re-simulate every recorded episode with the recorded game and write tables: steps (one row "
        "per player per frame: observation before acting, action, reward, terminated, truncated, info), "
        "participants, answers, events, matches, match_participants, agent_meta. DATA_DIR is an experiment's data folder "
        "(with coplay.sqlite and recordings/) or a data root holding several; each experiment goes in its own "
        "subfolder of --out. Recordings whose game source changed are skipped with the reason.",
    )
    parser.add_argument("data_dir", metavar="DATA_DIR", help="an experiment's data folder, or a folder of them")
    parser.add_argument("--format", choices=FORMATS, default="csv", help="file format (default csv; parquet "
                        "needs pyarrow)")
    parser.add_argument("--out", metavar="DIR", default=None, help="where to write (default DATA_DIR/export)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = export(args.data_dir, args.format, args.out)
    print("\n".join(summary_lines(results)))
    return 0
