"""diff(): a probe's result under pyengine against PyTorch's (shapes, dtypes, values within 1e-4 + 2e-3 |x|)."""
def diff(a, b, kind, path="out"):
    if isinstance(a, dict) and "T" in a:
        if not (isinstance(b, dict) and "T" in b):
            return f"{path}: torch gives a tensor, pyengine {type(b).__name__}"
        if a["T"] != b["T"]:
            return f"{path}: shape {a['T']} vs pyengine {b['T']}"
        ka = a["dtype"].replace("float32", "f").replace("float64", "d")
        kb = b["dtype"].replace("float32", "f").replace("float64", "d")
        if ka != kb:
            return f"{path}: dtype {a['dtype']} vs pyengine {b['dtype']}"
        if kind == "shape":
            return None
        for x, y in zip(a["v"], b["v"]):
            if not (abs(x - y) <= 1e-4 + 2e-3 * abs(x)):
                return f"{path}: values differ (e.g. {x:.6g} vs {y:.6g})"
        return None
    if isinstance(a, dict) and "N" in a:
        return diff({"T": a["N"], "dtype": "d", "v": a["v"]}, {"T": b.get("N", b.get("T")), "dtype": "d", "v": b.get("v")} if isinstance(b, dict) else b, kind, path)
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return f"{path}: {len(a)} results vs pyengine {len(b) if isinstance(b, list) else type(b).__name__}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = diff(x, y, kind, f"{path}[{i}]")
            if d:
                return d
        return None
    if isinstance(a, dict):
        if not isinstance(b, dict) or set(a) != set(b):
            return f"{path}: keys differ"
        for k in a:
            d = diff(a[k], b[k], kind, f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return None if abs(a - b) <= 1e-4 + 2e-3 * abs(a) else f"{path}: {a:.6g} vs pyengine {b:.6g}"
    if a != b:
        return f"{path}: {a!r} vs pyengine {b!r}"
    return None

