#!/usr/bin/env python3
"""Figure 2.3: the requests of a push and of a pull. Draws
registry-sequence.svg (python3, standard library only):
    python3 registry-sequence.py > registry-sequence.svg
"""
from xml.sax.saxutils import escape

W, CLIENT, REGISTRY, ROW = 720, 150, 590, 30
BLUE, ORANGE, GREY, INK = "#1b6fa8", "#d95f02", "#777777", "#222222"

steps = [
    ("phase", "push: blobs first, the manifest last"),
    ("req", "HEAD /v2/kubia/blobs/sha256:3e1f…"),
    ("res", "404: not there, so upload it"),
    ("req", "POST /v2/kubia/blobs/uploads/"),
    ("res", "202, Location: …/uploads/<id>"),
    ("req", "PATCH …/uploads/<id>  (8 MiB chunk)"),
    ("res", "202, Range: 0-8388607"),
    ("req", "PUT …/uploads/<id>?digest=sha256:3e1f…"),
    ("res", "201: digest checked, blob stored"),
    ("note", "the same for the config; a blob whose HEAD says 200 is skipped"),
    ("req", "PUT /v2/kubia/manifests/v1"),
    ("res", "201, Docker-Content-Digest: sha256:9f2c…"),
    ("phase", "pull: the manifest first, then what it names"),
    ("req", "GET /v2/kubia/manifests/v1"),
    ("res", "200: the manifest"),
    ("req", "GET /v2/kubia/blobs/sha256:a1b3…  (config)"),
    ("res", "200: bytes, hashed as they arrive"),
    ("req", "GET /v2/kubia/blobs/sha256:3e1f…  (layer)"),
    ("res", "200: kept only if its digest matches"),
]

out = []
y = 70
for kind, text in steps:
    t = escape(text)
    mid = (CLIENT + REGISTRY) / 2
    if kind == "phase":
        y += 8
        out.append(f'<rect x="20" y="{y - 16}" width="{W - 40}" height="24" rx="4" fill="#eeeeee"/>')
        out.append(f'<text x="30" y="{y}" font-weight="bold" fill="{INK}">{t}</text>')
        y += ROW
        continue
    if kind == "note":
        out.append(f'<text x="{mid}" y="{y}" text-anchor="middle" font-style="italic" fill="{GREY}" font-size="13">{t}</text>')
        y += ROW
        continue
    if kind == "req":
        x1, x2, colour, dash = CLIENT, REGISTRY - 8, BLUE, ""
        out.append(f'<polygon points="{REGISTRY},{y + 6} {REGISTRY - 10},{y + 1} {REGISTRY - 10},{y + 11}" fill="{colour}"/>')
    else:
        x1, x2, colour, dash = REGISTRY, CLIENT + 8, ORANGE, ' stroke-dasharray="6 4"'
        out.append(f'<polygon points="{CLIENT},{y + 6} {CLIENT + 10},{y + 1} {CLIENT + 10},{y + 11}" fill="{colour}"/>')
    out.append(f'<line x1="{x1}" y1="{y + 6}" x2="{x2}" y2="{y + 6}" stroke="{colour}" stroke-width="1.6"{dash}/>')
    out.append(f'<text x="{mid}" y="{y}" text-anchor="middle" fill="{INK}">{t}</text>')
    y += ROW

height = y + 10
head = [
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif" font-size="14">',
    f'<rect width="{W}" height="{height}" fill="white"/>',
]
for x, name, fill, stroke in [(CLIENT, "client (ch02 push, pull)", "#d5efe6", "#1b9e77"),
                              (REGISTRY, "registry (ch02 registry)", "#dbe8f3", BLUE)]:
    head.append(f'<line x1="{x}" y1="44" x2="{x}" y2="{height - 10}" stroke="{GREY}" stroke-width="1" stroke-dasharray="2 3"/>')
    head.append(f'<rect x="{x - 110}" y="12" width="220" height="32" rx="6" fill="{fill}" stroke="{stroke}"/>')
    head.append(f'<text x="{x}" y="33" text-anchor="middle" font-weight="bold" fill="{INK}">{name}</text>')
print("\n".join(head + out + ["</svg>"]))
