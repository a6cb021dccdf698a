"""certkit (the library) must not import apps, timm, matplotlib or hypothesis (STYLE §6)."""

import subprocess
import sys


def test_import_certkit_pulls_no_heavy_or_app_modules():
    code = (
        "import sys, certkit; "
        "bad = [m for m in ('timm', 'matplotlib', 'hypothesis', 'synthetic', 'audits', "
        "'paper_figs', 'weightwatcher') if m in sys.modules]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"certkit imported {out.stdout.strip()}"
