"""Bar charts (SVG, no dependencies) of the ratios in bench/RESULTS.md,
drawn from the same run: RESULTS.md links them from bench/charts/."""

from __future__ import annotations

from html import escape
from pathlib import Path


def bar_chart(title: str, rows: list[tuple[str, float]], unit: str, target: float | None = None,
              target_label: str = "target") -> str:
    """Horizontal bars, one per (label, value); a dashed line at `target`."""
    width, left, bar, gap, top = 760, 230, 22, 8, 48
    height = top + len(rows) * (bar + gap) + 40
    peak = max([v for _, v in rows] + ([target] if target else []) + [1e-9])
    scale = (width - left - 90) / peak
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(rows):
        y = top + i * (bar + gap)
        w = max(1.0, value * scale)
        out.append(f'<text x="{left - 8}" y="{y + bar * 0.7:.1f}" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="#4a78b5"/>')
        out.append(f'<text x="{left + w + 6:.1f}" y="{y + bar * 0.7:.1f}">{value:,.2f}{escape(unit)}</text>')
    if target:
        x = left + target * scale
        bottom = top + len(rows) * (bar + gap)
        out.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{bottom}" stroke="#c0392b" '
                   'stroke-width="2" stroke-dasharray="6,4"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle" fill="#c0392b">'
                   f'{escape(target_label)} {target:g}{escape(unit)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(folder: Path, name: str, svg: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.svg"
    path.write_text(svg)
    return path
