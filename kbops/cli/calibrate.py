"""``kbops calibrate``: how sure the bot is of its answers, per language (kbops/index/calibration.py)."""

from __future__ import annotations

import argparse
from typing import Any

from kbops.cli._base import Subparsers, add_command, add_json_flag, emit
from kbops.config import Settings
from kbops.index.calibration import report


def register(subparsers: Subparsers) -> None:
    """Add ``kbops calibrate``."""
    p = add_command(
        subparsers, "calibrate", cmd_calibrate,
        "calibrate the bot's confidence per language on the store's own questions (what the next publish stores)",
    )
    p.add_argument("--report", action="store_true", help="print the calibration stored with the active release instead of fitting anew")
    add_json_flag(p)


def cmd_calibrate(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.pipeline import calibrate, calibration_report

    result = calibration_report(settings) if args.report else calibrate(settings)
    emit(args, result, _print)
    return 0


def _print(result: dict[str, Any]) -> None:
    print(f"release {result['release_id']}")
    calibration = {k: v for k, v in result.items() if k != "release_id"}
    for line in report(calibration or None):
        print(line)
