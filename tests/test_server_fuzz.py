"""Fuzzing the real tool server over HTTP with malformed requests.

Every malformed request must be refused with a 4xx (never a 5xx, never a 2xx) whose JSON body says what was wrong
(``body["error"]["message"]`` on ``/tools``, ``body["text"]`` on the OpenThinkIMG ``/worker_generate`` routes),
and the server must stay healthy afterwards: no leaked worker slots (``max_queue`` is small here, so a leak would
show as 503s), ``/health`` reports nothing in flight, and a valid call still answers at once.

One server serves the whole module (small limits, so bombs and huge images are cheap to refuse); one keep-alive
``httpx.Client`` sends everything. The number of malformed requests is counted and checked at the end.
"""

from __future__ import annotations

import base64
import io
import json
import random
import struct
import time
import zlib
from collections import Counter

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from thinkimg.config import LimitsConfig, ToolsConfig
from thinkimg.images import image_hash, png_base64
from thinkimg.server import compat
from thinkimg.server.launcher import ToolServer
from thinkimg.tools import REGISTRY

SEVEN = ["OCR", "Point", "ZoomInSubfigure", "Crop", "SegmentRegionAroundPoint", "DrawHorizontalLineByY",
         "DrawVerticalLineByX"]
DRAWING = ["DrawHorizontalLineByY", "DrawVerticalLineByX"]
#: The seven tools, or those of them registered so far (the drawing tools always are).
TOOLS = [name for name in SEVEN if name in REGISTRY.names()]
assert set(DRAWING) <= set(TOOLS)

MAX_REQUEST = 8 * 1024 * 1024
MAX_IMAGE_BYTES = 4 * 1024 * 1024
MAX_PIXELS = 4_000_000
LIMITS = LimitsConfig(max_request_bytes=MAX_REQUEST, max_image_bytes=MAX_IMAGE_BYTES, max_image_pixels=MAX_PIXELS,
                      max_queue=4, call_timeout_s=30.0)
CONFIG = ToolsConfig(tools=TOOLS, limits=LIMITS)

#: Malformed requests sent, by category (checked against MIN_MALFORMED in the last test), and the tests that ran.
SENT: Counter[str] = Counter()
RAN: set[str] = set()
MIN_MALFORMED = 1000

FUZZ = dict(deadline=None, derandomize=True, database=None, print_blob=False,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                   HealthCheck.large_base_example])

W, H = 96, 64  # the sample image the argument fuzz works on (uploaded once, then cited by hash)


def _sample_image() -> Image.Image:
    img = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle((10, 20, 30, 60), fill=(31, 119, 180))
    draw.rectangle((50, 35, 70, 60), fill=(255, 127, 14))
    draw.text((8, 2), "Sales", fill="black")
    return img


SAMPLE = _sample_image()
SAMPLE_B64 = png_base64(SAMPLE)
SAMPLE_HASH = image_hash(SAMPLE)


# --------------------------------------------------------------------------------------------- crafted images

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, *, bit_depth: int = 8, color_type: int = 2) -> bytes:
    """A tiny PNG whose IHDR claims ``width`` x ``height`` (its pixel data is a few bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return PNG_SIG + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def png_bomb(side: int = 20_000) -> bytes:
    """A real decompression bomb: a complete, valid 1-bit side x side PNG of zeros, ~50 KB compressed."""
    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    block = row * 1000
    data = b"".join(comp.compress(block) for _ in range(side // 1000)) + comp.compress(row * (side % 1000))
    data += comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return PNG_SIG + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def bmp_declaring(width: int, height: int) -> bytes:
    """A BMP header claiming ``width`` x ``height`` with 16 bytes of pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 70, 0, 0, 54) + info + b"\0" * 16


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose screen and first frame claim ``width`` x ``height``."""
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b","
            + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00;")


def _noise_png() -> tuple[bytes, int]:
    """A 40x30 noise PNG (a long IDAT) and the offset up to which any cut leaves the pixel data incomplete."""
    rnd = random.Random(0)
    img = Image.frombytes("RGB", (40, 30), bytes(rnd.randrange(256) for _ in range(40 * 30 * 3)))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    data = buf.getvalue()
    at = data.index(b"IDAT")
    length = struct.unpack(">I", data[at - 4:at])[0]
    return data, at + 4 + length // 2


NOISE_PNG, NOISE_CUT_LIMIT = _noise_png()
BOMB = png_bomb()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------------------------- server + helpers


@pytest.fixture(autouse=True)
def _record_test(request):
    RAN.add(request.function.__name__)


@pytest.fixture(scope="module")
def server():
    with ToolServer(CONFIG) as srv:
        yield srv


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        yield client


@pytest.fixture(scope="module")
def specs(http) -> dict[str, dict]:
    return {t["name"]: t for t in http.get("/tools").json()["tools"]}


@pytest.fixture(scope="module")
def uploaded(http) -> str:
    """Send the sample image once (a valid call); the fuzz then cites it by hash."""
    r = http.post("/tools/DrawHorizontalLineByY", json={"arguments": {"y": 3}, "image": SAMPLE_B64})
    assert r.status_code == 200, r.text
    assert r.json()["image_hash"] == SAMPLE_HASH
    return SAMPLE_HASH


def refused(resp: httpx.Response, category: str, *keywords: str, compat_route: bool = False,
            status: int | tuple[int, ...] | None = None) -> str:
    """Check one refusal: 4xx, JSON error body, message naming the problem; count it. Returns the message."""
    SENT[category] += 1
    where = f"{resp.request.method} {resp.request.url.path}"
    assert 400 <= resp.status_code < 500, f"{category}: {where} answered {resp.status_code}: {resp.text[:500]}"
    if status is not None:
        allowed = (status,) if isinstance(status, int) else status
        assert resp.status_code in allowed, f"{category}: {where} answered {resp.status_code}: {resp.text[:300]}"
    assert resp.headers.get("content-type", "").startswith("application/json"), (category, resp.text[:300])
    body = resp.json()
    assert isinstance(body, dict), (category, body)
    if compat_route:
        message = body["text"]
        assert body["error_code"] == 1 and body["edited_image"] is None, (category, body)
    else:
        message = body["error"]["message"]
    assert isinstance(message, str) and message, (category, body)
    low = message.lower()
    assert any(k.lower() in low for k in keywords), f"{category}: message {message!r} names none of {keywords}"
    assert "root:" not in resp.text  # nothing of /etc/passwd ever comes back
    return message


def post_raw(http: httpx.Client, path: str, content: bytes, content_type: str | None = "application/json"):
    headers = {"content-type": content_type} if content_type else {}
    return http.post(path, content=content, headers=headers)


RAW = "\x00RAW\x00"


def raw_json(obj, token: str) -> bytes:
    """JSON text of ``obj`` with the string RAW replaced by a bare token (NaN, Infinity: not JSON, but sent)."""
    return json.dumps(obj).replace(json.dumps(RAW), token).encode()


def valid_args(spec: dict) -> dict:
    """Arguments that pass the tool's validation (the tool may still refuse them for this image)."""
    out = {}
    params = spec["parameters"]
    for name in params.get("required", []):
        prop = params["properties"][name]
        out[name] = _example(name, prop)
    REGISTRY.get(spec["name"]).Args.model_validate(out)  # they do validate
    return out


def _example(name: str, prop: dict):
    if "enum" in prop:
        return prop["enum"][0]
    if "const" in prop:
        return prop["const"]
    types = _types(prop)
    if "array" in types:
        return [0, 0, 10, 10] if "box" in name else []
    if "number" in types or "integer" in types:
        return 5
    if "boolean" in types:
        return True
    return "2021"


def _types(prop: dict) -> set[str]:
    """JSON types a property schema allows."""
    if "anyOf" in prop:
        return set().union(*(_types(p) for p in prop["anyOf"]))
    if "enum" in prop or "const" in prop:
        return {"enum"}
    kind = prop.get("type")
    return set(kind) if isinstance(kind, list) else ({kind} if kind else {"any"})


LETTERS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=12)
FINITE = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
NON_FINITE_TOKENS = st.sampled_from(["NaN", "Infinity", "-Infinity"])
NON_FINITE_STRINGS = st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "-Infinity", "+inf", "1e400", "-1e999"])
SMALL_JSON = st.recursive(st.none() | st.booleans() | FINITE | LETTERS,
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(LETTERS, inner, max_size=3),
                          max_leaves=6)


def wrong_type_values(prop: dict):
    """A strategy of JSON values that this property's schema never accepts (lax mode included)."""
    types = _types(prop)
    if "any" in types:
        return None
    options = []
    if types & {"number", "integer"}:
        options.append(LETTERS)  # letters never parse as a finite number ("nan", "inf" are refused as non-finite)
    else:
        if "enum" in types:
            options.append(LETTERS.filter(lambda s: s not in prop.get("enum", [prop.get("const")])))
        elif "string" not in types:
            options.append(LETTERS)
        if "boolean" not in types:
            options.append(FINITE)
        if "string" not in types and "boolean" not in types:
            options.append(st.booleans())
    if "array" not in types:
        options.append(st.lists(FINITE, min_size=1, max_size=3))
    elif _types(prop.get("items", {})) & {"number", "integer"}:
        options.append(st.lists(LETTERS, min_size=1, max_size=4))  # items of the wrong type
    if "object" not in types:
        options.append(st.dictionaries(LETTERS, FINITE, min_size=1, max_size=2))
    if "null" not in types and prop.get("default", 0) is not None:
        options.append(st.none())
    return st.one_of(options)


# --------------------------------------------------------------------------------------------- the fuzz

TOOL = st.sampled_from(TOOLS)
TRUNCATABLE = json.dumps({"arguments": {"y": 1}, "image": SAMPLE_B64[:40]})  # cut short: never valid JSON


@settings(max_examples=120, **FUZZ)
@given(tool=TOOL,
       body=st.one_of(
           st.binary(max_size=200),
           st.text(max_size=100).map(str.encode),
           st.builds(lambda n, tail: (TRUNCATABLE[:n] + tail).encode(),
                     st.integers(0, 60), st.sampled_from(["", ",", "}}", "'", "\\", "\x00"])),
           st.sampled_from([b"", b" ", b"{", b"}", b"{'arguments': {}}", b'{"arguments": {"y": 1},}', b"[" * 50_000,
                            b'{"a":' * 20_000, b"\xff\xfe\x00{", b'{"image": "\xff"}', b"nul", b"True"]),
       ),
       route=st.sampled_from(["tools", "compat", "compat_path"]))
def test_bad_json_bytes(http, tool, body, route):
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        parsed = None
    assume(not isinstance(parsed, dict))  # only bodies that are not a JSON object
    path = {"tools": f"/tools/{tool}", "compat": "/worker_generate", "compat_path": f"/{tool}/worker_generate"}[route]
    refused(post_raw(http, path, body), "bad_json", "JSON", compat_route=route != "tools")


@settings(max_examples=60, **FUZZ)
@given(value=st.one_of(st.none(), st.booleans(), FINITE, st.text(max_size=20),
                       st.lists(SMALL_JSON, max_size=4)),
       route=st.sampled_from(["tools", "compat"]), tool=TOOL)
def test_non_object_json(http, value, route, tool):
    path = f"/tools/{tool}" if route == "tools" else "/worker_generate"
    refused(post_raw(http, path, json.dumps(value).encode()), "non_object_json", "JSON object",
            compat_route=route == "compat")


@settings(max_examples=40, **FUZZ)
@given(tool=TOOL, content_type=st.sampled_from([None, "text/plain", "application/x-www-form-urlencoded",
                                               "multipart/form-data; boundary=x", "application/xml"]))
def test_json_sent_with_a_wrong_content_type(http, specs, tool, content_type):
    body = json.dumps({"arguments": valid_args(specs[tool]), "image": SAMPLE_B64}).encode()
    refused(post_raw(http, f"/tools/{tool}", body, content_type), "content_type", "JSON")


_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@st.composite
def bad_base64(draw) -> str:
    kind = draw(st.sampled_from(["bad_char", "bad_length", "bad_padding", "non_ascii", "empty", "data_url"]))
    core = draw(st.text(alphabet=_B64_ALPHABET, min_size=4, max_size=64))
    core = core[: len(core) - len(core) % 4] or "AAAA"
    if kind == "bad_char":
        at = draw(st.integers(0, len(core)))
        return core[:at] + draw(st.sampled_from(list("!#$%&()*,-.:;<>?@[]^_`{|}~\"'"))) + core[at:]
    if kind == "bad_length":
        return core + draw(st.text(alphabet=_B64_ALPHABET, min_size=1, max_size=1))
    if kind == "bad_padding":
        return core + draw(st.sampled_from(["A=", "A==", "=A==", "AB=C", "A=B="]))  # (excess "=" is tolerated)
    if kind == "non_ascii":
        return core + draw(st.text(alphabet="éß漢字😀\u0000", min_size=1, max_size=3))
    if kind == "empty":
        return draw(st.sampled_from(["", " ", "\n\t", "data:image/png;base64,", "data:image/png;base64, "]))
    return draw(st.sampled_from(["data:image/png,", "data:;charset=utf-8,", "data:image/png;base64"])) + core


@settings(max_examples=120, **FUZZ)
@given(tool=TOOL, image=bad_base64(), route=st.sampled_from(["tools", "compat"]))
def test_bad_base64(http, specs, tool, image, route):
    if route == "tools":
        r = http.post(f"/tools/{tool}", json={"arguments": valid_args(specs[tool]), "image": image})
    else:
        r = http.post("/worker_generate", json={"tool": tool, "image": image, "param": "x=\"5\" y=\"5\" [0, 0, 5, 5]"})
    if image.strip() == "" and route == "compat":  # blank: the compat route calls it missing
        refused(r, "bad_base64", "image", compat_route=True)
    else:
        refused(r, "bad_base64", "base64", "data url", compat_route=route == "compat", status=400)


@st.composite
def not_an_image(draw) -> bytes:
    kind = draw(st.sampled_from(["text", "random", "truncated_png", "magic_then_junk", "png_bad_crc"]))
    if kind == "text":
        return draw(st.text(min_size=1, max_size=200)).encode()
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=300))
    if kind == "truncated_png":
        return NOISE_PNG[: draw(st.integers(1, NOISE_CUT_LIMIT))]
    if kind == "magic_then_junk":
        magic = draw(st.sampled_from([PNG_SIG, b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00",
                                      b"RIFF\x00\x00\x00\x00WEBP"]))
        return magic + draw(st.binary(max_size=64))
    data = bytearray(NOISE_PNG)
    data[29] ^= 0xFF  # IHDR's CRC no longer matches
    return bytes(data)


@settings(max_examples=100, **FUZZ)
@given(tool=TOOL, data=not_an_image(), route=st.sampled_from(["tools", "compat"]))
def test_base64_of_non_images(http, specs, tool, data, route):
    image = b64(data)
    if route == "tools":
        r = http.post(f"/tools/{tool}", json={"arguments": valid_args(specs[tool]), "image": image})
    else:
        r = http.post("/worker_generate", json={"tool": tool, "image": image, "param": "x=\"5\" y=\"5\" [0, 0, 5, 5]"})
    refused(r, "non_image", "not an image", "corrupt", "truncated", "unsupported image format", "no pixels",
            "decompression bomb", "pixels", compat_route=route == "compat")


@settings(max_examples=60, **FUZZ)
@given(tool=TOOL, data=st.one_of(
    st.just(BOMB),
    st.tuples(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1)).filter(lambda wh: wh[0] * wh[1] > MAX_PIXELS)
    .flatmap(lambda wh: st.sampled_from([png_declaring(*wh), png_declaring(*wh, bit_depth=1, color_type=0),
                                         png_declaring(*wh, bit_depth=8, color_type=3), bmp_declaring(*wh)])),
    st.tuples(st.integers(1, 65535), st.integers(1, 65535)).filter(lambda wh: wh[0] * wh[1] > MAX_PIXELS)
    .map(lambda wh: gif_declaring(*wh)),
), route=st.sampled_from(["tools", "compat"]))
def test_decompression_bombs_and_declared_huge_dimensions(http, specs, tool, data, route):
    if route == "tools":
        r = http.post(f"/tools/{tool}", json={"arguments": valid_args(specs[tool]), "image": b64(data)})
    else:
        r = http.post(f"/{tool}/worker_generate", json={"image": b64(data), "param": "x=\"5\" y=\"5\""})
    refused(r, "bomb", "pixels", "bomb", "limit", compat_route=route == "compat", status=413)


@settings(max_examples=8, **FUZZ)
@given(size=st.sampled_from([(2001, 2000), (4_000_001, 1), (1, 4_000_001), (2500, 1700)]),
       mode=st.sampled_from(["1", "L", "RGB"]))
def test_real_images_beyond_the_pixel_limit(http, size, mode):
    img = Image.new(mode, size)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    r = http.post("/tools/DrawHorizontalLineByY", json={"arguments": {"y": 0}, "image": b64(buf.getvalue())})
    msg = refused(r, "huge_dims", "pixels", status=413)
    assert f"{size[0]}x{size[1]}" in msg


def _bad_coordinate(size: int):
    """Out-of-image, non-finite and wrongly typed values for a pixel coordinate in [0, size - 1]."""
    return st.one_of(
        st.floats(max_value=-1, allow_nan=False, allow_infinity=False).map(lambda v: ("value", v)),
        st.floats(min_value=size + 0.5, allow_nan=False, allow_infinity=False).map(lambda v: ("value", v)),
        st.integers(min_value=size, max_value=10**30).map(lambda v: ("value", v)),
        NON_FINITE_TOKENS.map(lambda t: ("raw", t)),
        NON_FINITE_STRINGS.map(lambda s: ("value", s)),
        LETTERS.map(lambda s: ("value", s)),
        st.sampled_from([None, [], [1], {"v": 1}, "", " "]).map(lambda v: ("value", v)),
    )


@st.composite
def bad_box(draw):
    kind = draw(st.sampled_from(["length", "non_finite", "inverted", "outside", "types"]))
    coord = st.integers(0, min(W, H))
    if kind == "length":
        n = draw(st.sampled_from([0, 1, 2, 3, 5, 6, 8]))
        return ("value", draw(st.lists(coord, min_size=n, max_size=n)))
    if kind == "non_finite":
        box = draw(st.lists(coord, min_size=4, max_size=4))
        at = draw(st.integers(0, 3))
        token = draw(NON_FINITE_TOKENS)
        return ("raw_box", (box, at, token))
    if kind == "inverted":
        x1, y1 = draw(st.integers(1, W)), draw(st.integers(1, H))
        return ("value", [x1, y1, draw(st.integers(0, x1 - 1)), draw(st.integers(0, y1 - 1))])
    if kind == "outside":  # entirely to the right of / below the image
        x1 = draw(st.integers(W + 1, 10**6))
        y1 = draw(st.integers(H + 1, 10**6))
        return ("value", [x1, y1, x1 + draw(st.integers(1, 100)), y1 + draw(st.integers(1, 100))])
    return ("value", draw(st.one_of(LETTERS, st.lists(LETTERS, min_size=4, max_size=4), st.none(),
                                    st.dictionaries(LETTERS, FINITE, max_size=2))))


def _coordinate_cases():
    """(tool, argument, strategy of bad values) for every coordinate-like argument of the served tools."""
    cases = []
    for name in TOOLS:
        props = REGISTRY.get(name).json_schema().get("properties", {})
        for arg in props:
            if arg in ("x", "y"):
                cases.append((name, arg, _bad_coordinate(W if arg == "x" else H)))
            elif arg == "box":
                cases.append((name, arg, bad_box()))
    return cases


COORDINATE_CASES = _coordinate_cases()


@settings(max_examples=220, **FUZZ)
@given(case=st.sampled_from(COORDINATE_CASES).flatmap(lambda c: st.tuples(st.just(c[0]), st.just(c[1]), c[2])))
def test_bad_coordinates_and_boxes(http, specs, uploaded, case):
    tool, arg, (how, value) = case
    args = valid_args(specs[tool])
    if how == "value":
        args[arg] = value
        r = http.post(f"/tools/{tool}", json={"arguments": args, "image_hash": uploaded})
    elif how == "raw":
        args[arg] = RAW
        r = post_raw(http, f"/tools/{tool}", raw_json({"arguments": args, "image_hash": uploaded}, value))
    else:
        box, at, token = value
        box = list(box)
        box[at] = RAW
        args[arg] = box
        r = post_raw(http, f"/tools/{tool}", raw_json({"arguments": args, "image_hash": uploaded}, token))
    refused(r, "coordinates", f"'{arg}", status=422)


@settings(max_examples=40, **FUZZ)
@given(tool=TOOL, token=NON_FINITE_TOKENS, where=st.sampled_from(["arguments", "image", "image_hash", "extra"]))
def test_non_finite_tokens_in_the_body(http, tool, token, where):
    body = {"arguments": RAW} if where == "arguments" else {"arguments": {}, where: RAW}
    r = post_raw(http, f"/tools/{tool}", raw_json(body, token))
    refused(r, "non_finite", where, status=422)


@st.composite
def wrong_typed_argument(draw):
    tool = draw(TOOL)
    props = REGISTRY.get(tool).json_schema().get("properties", {})
    arg = draw(st.sampled_from(sorted(props)))
    strategy = wrong_type_values(props[arg])
    assume(strategy is not None)
    return tool, arg, draw(strategy)


@settings(max_examples=150, **FUZZ)
@given(case=wrong_typed_argument())
def test_wrongly_typed_arguments(http, specs, uploaded, case):
    tool, arg, value = case
    args = valid_args(specs[tool])
    args[arg] = value
    r = http.post(f"/tools/{tool}", json={"arguments": args, "image_hash": uploaded})
    refused(r, "wrong_types", f"'{arg}", status=422)


@settings(max_examples=60, **FUZZ)
@given(tool=TOOL, field=st.sampled_from(["arguments", "image", "image_hash"]),
       value=st.one_of(st.integers(), FINITE, st.booleans(), st.lists(st.integers(), max_size=3),
                       st.dictionaries(LETTERS, st.integers(), max_size=2), LETTERS))
def test_wrongly_typed_body_fields(http, specs, tool, field, value):
    if field == "arguments":
        assume(not isinstance(value, dict))
    else:
        assume(not isinstance(value, str))
    body = {"arguments": valid_args(specs[tool]), "image": SAMPLE_B64}
    if field == "image_hash":
        body.pop("image")
    body[field] = value
    refused(http.post(f"/tools/{tool}", json=body), "wrong_types", field, status=422)


@settings(max_examples=80, **FUZZ)
@given(tool=TOOL, case=st.sampled_from(["missing_image", "missing_required", "extra_field", "extra_argument",
                                        "image_and_hash"]),
       name=LETTERS.filter(lambda s: s not in ("arguments", "image", "image_hash", "x", "y", "box", "color",
                                               "description")))
def test_missing_and_extra_fields(http, specs, uploaded, tool, case, name):
    args = valid_args(specs[tool])
    if case == "missing_image":
        r = http.post(f"/tools/{tool}", json={"arguments": args})
        refused(r, "missing_extra", "'image'", status=422)
    elif case == "missing_required":
        required = specs[tool]["parameters"].get("required", [])
        assume(required)
        dropped = required[len(name) % len(required)]
        del args[dropped]
        r = http.post(f"/tools/{tool}", json={"arguments": args, "image_hash": uploaded})
        refused(r, "missing_extra", f"'{dropped}'", status=422)
    elif case == "extra_field":
        r = http.post(f"/tools/{tool}", json={"arguments": args, "image_hash": uploaded, name: 1})
        refused(r, "missing_extra", name, status=422)
    elif case == "extra_argument":
        assume(name not in specs[tool]["parameters"].get("properties", {}))
        args[name] = 1
        r = http.post(f"/tools/{tool}", json={"arguments": args, "image_hash": uploaded})
        msg = refused(r, "missing_extra", name, status=422)
        assert "allowed arguments" in msg
    else:
        r = http.post(f"/tools/{tool}", json={"arguments": args, "image_hash": uploaded, "image": SAMPLE_B64})
        refused(r, "missing_extra", "either", status=422)


def _is_served(name: str) -> bool:
    canonical = compat.ALIASES.get(name.replace("_", "").replace("-", "").lower(), name)
    return name in TOOLS or canonical in TOOLS


@settings(max_examples=80, **FUZZ)
@given(name=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1,
                    max_size=30).filter(lambda s: s[0].isalpha() and s != "tools" and not _is_served(s)),
       route=st.sampled_from(["tools", "compat_body", "compat_path"]))
def test_unknown_tools(http, name, route):
    if route == "tools":
        r = http.post(f"/tools/{name}", json={"arguments": {}, "image": SAMPLE_B64})
    elif route == "compat_body":
        r = http.post("/worker_generate", json={"tool": name, "image": SAMPLE_B64, "param": ""})
    else:
        r = http.post(f"/{name}/worker_generate", json={"image": SAMPLE_B64, "param": ""})
    msg = refused(r, "unknown_tool", "unknown tool", compat_route=route != "tools", status=404)
    assert TOOLS[0] in msg  # and it lists the available ones


PATHS = ["/etc/passwd", "file:///etc/passwd", "../../x.png", "../../../../etc/shadow", "~/.ssh/id_rsa",
         "/proc/self/environ", "C:\\Windows\\win.ini", "\\\\server\\share\\x.png", "http://127.0.0.1:22/x.png",
         "https://example.com/chart.png", "./chart.png", "chart.png", "/dev/zero", "/dev/urandom", "s3://bucket/x.png"]


@settings(max_examples=50, **FUZZ)
@given(path=st.one_of(st.sampled_from(PATHS),
                      st.lists(st.sampled_from(["..", ".", "etc", "tmp", "home", "x"]), min_size=1, max_size=6)
                      .map(lambda parts: "/".join(parts) + ".png")),
       tool=TOOL, route=st.sampled_from(["tools", "compat"]))
def test_file_paths_as_image(http, specs, path, tool, route):
    if route == "tools":
        r = http.post(f"/tools/{tool}", json={"arguments": valid_args(specs[tool]), "image": path})
    else:
        r = http.post("/worker_generate", json={"tool": tool, "image": path, "param": "x=\"5\" y=\"5\" [0, 0, 5, 5]"})
    refused(r, "file_path", "base64", "not an image", compat_route=route == "compat", status=400)


def test_file_paths_as_image_hash(http):
    for path in PATHS:
        r = http.post("/tools/DrawVerticalLineByX", json={"arguments": {"x": 1}, "image_hash": path})
        refused(r, "file_path", "no image with hash", status=404)


@settings(max_examples=50, **FUZZ)
@given(key=st.one_of(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), st.text(max_size=80)),
       tool=TOOL)
def test_unknown_image_hash(http, specs, key, tool):
    assume(key != SAMPLE_HASH)
    r = http.post(f"/tools/{tool}", json={"arguments": valid_args(specs[tool]), "image_hash": key})
    refused(r, "unknown_hash", "hash", status=404)


def test_oversized_bodies(http):
    # declared by Content-Length: refused before the body is read
    for extra in (1, 1024, 3 * 1024 * 1024):
        refused(post_raw(http, "/tools/DrawHorizontalLineByY", b" " * (MAX_REQUEST + extra)), "oversized", "limit",
                status=413)
        refused(post_raw(http, "/worker_generate", b" " * (MAX_REQUEST + extra)), "oversized", "limit",
                compat_route=True, status=413)

    # streamed without a length (chunked): refused once the limit is crossed
    def chunks():
        for _ in range(MAX_REQUEST // (1 << 20) + 2):
            yield b" " * (1 << 20)

    for path, is_compat in (("/tools/DrawHorizontalLineByY", False), ("/worker_generate", True)):
        r = http.post(path, content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in {k.lower() for k in r.request.headers}
        refused(r, "oversized", "limit", compat_route=is_compat, status=413)

    # within the request limit, but the image is over max_image_bytes
    big = "A" * (MAX_IMAGE_BYTES * 4 // 3 + 8)
    refused(http.post("/tools/DrawHorizontalLineByY", json={"arguments": {"y": 1}, "image": big}), "oversized",
            "limit", status=413)
    refused(http.post("/worker_generate", json={"tool": "DrawHorizontalLineByY", "image": big, "param": 'y="5"'}),
            "oversized", "limit", compat_route=True, status=413)


@settings(max_examples=60, **FUZZ)
@given(case=st.one_of(
    st.tuples(st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "OPTIONS"]),
              st.sampled_from(["/tools/{tool}", "/worker_generate", "/{tool}/worker_generate"])),
    st.tuples(st.sampled_from(["POST", "PUT", "DELETE", "PATCH"]), st.sampled_from(["/health", "/tools"])),
), tool=TOOL)
def test_wrong_http_methods(http, case, tool):
    method, path = case
    r = http.request(method, path.format(tool=tool), json={"arguments": {}, "image_hash": SAMPLE_HASH})
    refused(r, "wrong_method", "method not allowed", status=405)


def _bad_params():
    """(tool, strategy of malformed OpenThinkIMG ``param`` strings, keywords) per served tool."""
    pct_out = st.one_of(st.floats(min_value=100.01, max_value=1e12, allow_nan=False),
                        st.floats(max_value=-0.01, min_value=-1e12, allow_nan=False))
    no_digits = st.text(alphabet="abcdefghijklmnopqrstuvwxyz =\"'<>", max_size=40)
    cases = []
    for axis, tool in (("y", "DrawHorizontalLineByY"), ("x", "DrawVerticalLineByX")):
        cases.append((tool, no_digits.filter(lambda p, a=axis: not getattr(compat, "_" + a.upper()).search(p)),
                      (f"{axis}=",)))
        cases.append((tool, pct_out.map(lambda v, a=axis: f'{a}="{v:.6g}"'), ("percentage",)))
        cases.append((tool, st.sampled_from(["1e400", "-1e400", "101", "100.5", "-0.5", "9" * 50, "nan", "NaN", "inf",
                                             "-Infinity"]).map(lambda v, a=axis: f'{a}="{v}"'), ("percent",)))
    cases.append(("SegmentRegionAroundPoint", st.sampled_from(['x="10"', 'y="10"', "", "point at the bar", 'x=y=']),
                  ("percent",)))
    cases.append(("SegmentRegionAroundPoint", pct_out.map(lambda v: f'x="{v:.6g}" y="50"'), ("percentage",)))
    cases.append(("Crop", no_digits.map(lambda p: p.replace("[", "")), ("box",)))
    cases.append(("Crop", st.sampled_from(["[1, 2, 3]", "[1, 2]", "[]", "(0, 0, 5, 5)", "[a, b, c, d]"]), ("box",)))
    cases.append(("Crop", st.tuples(st.integers(W + 1, 10**6), st.integers(H + 1, 10**6)).map(
        lambda xy: f"[{xy[0]}, {xy[1]}, {xy[0] + 10}, {xy[1] + 10}]"), ("box",)))
    cases.append(("Crop", st.sampled_from(["[50, 50, 10, 10]", "[5, 5, 5, 5]", "[0, 0, 1e400, 10]"]), ("box",)))
    for tool in ("Point", "ZoomInSubfigure"):
        cases.append((tool, st.sampled_from(["", " ", "\n\t "]), ("param",)))
    return [c for c in cases if c[0] in TOOLS]


@settings(max_examples=150, **FUZZ)
@given(case=st.sampled_from(_bad_params()).flatmap(lambda c: st.tuples(st.just(c[0]), c[1], st.just(c[2]))),
       in_path=st.booleans())
def test_compat_routes_with_bad_params(http, case, in_path):
    tool, param, keywords = case
    if in_path:
        r = http.post(f"/{tool}/worker_generate", json={"image": SAMPLE_B64, "param": param})
    else:
        r = http.post("/worker_generate", json={"model": tool, "image": SAMPLE_B64, "param": param})
    refused(r, "compat_param", *keywords, compat_route=True, status=422)


@settings(max_examples=50, **FUZZ)
@given(tool=TOOL, case=st.sampled_from(["param_type", "no_image", "image_type", "no_tool", "tool_type"]),
       value=st.one_of(st.integers(), FINITE, st.booleans()))
def test_compat_routes_with_bad_fields(http, tool, case, value):
    body = {"tool": tool, "image": SAMPLE_B64, "param": 'x="5" y="5"'}
    keyword = {"param_type": "'param' must be a string", "no_image": "image", "image_type": "image",
               "no_tool": "tool", "tool_type": "tool"}[case]
    if case == "param_type":
        body["param"] = value
    elif case == "no_image":
        del body["image"]
    elif case == "image_type":
        body["image"] = value
    elif case == "no_tool":
        del body["tool"]
    else:
        body["tool"] = value
    refused(http.post("/worker_generate", json=body), "compat_fields", keyword, compat_route=True)


# --------------------------------------------------------------------------------------------- afterwards


def test_server_is_healthy_and_quick_after_the_fuzz(http, server):
    assert server.process.poll() is None, server.log_tail()
    health = http.get("/health").json()
    assert health["status"] == "ok" and health["in_flight"] == 0
    # more valid calls than max_queue slots, one after another: a leaked slot would turn them into 503s
    for y in range(LIMITS.max_queue + 2):
        started = time.perf_counter()
        r = http.post("/tools/DrawHorizontalLineByY", json={"arguments": {"y": y}, "image_hash": SAMPLE_HASH})
        assert r.status_code == 200, r.text
        assert time.perf_counter() - started < 2.0
    inline = http.post("/worker_generate", json={"tool": "DrawVerticalLineByX", "image": SAMPLE_B64, "param": 'x="50"'})
    assert inline.status_code == 200 and inline.json()["error_code"] == 0
    if "OCR" in TOOLS:
        started = time.perf_counter()
        r = http.post("/tools/OCR", json={"arguments": {}, "image_hash": SAMPLE_HASH})
        assert r.status_code == 200, r.text
        assert time.perf_counter() - started < 10.0
    assert http.get("/health").json()["in_flight"] == 0
    assert "Traceback" not in server.log_tail(100_000), server.log_tail()


def test_fuzz_sent_enough_malformed_requests():
    fuzz_tests = {name for name in globals() if name.startswith("test_")} - {
        "test_server_is_healthy_and_quick_after_the_fuzz", "test_fuzz_sent_enough_malformed_requests"}
    if not fuzz_tests <= RAN:  # a subset of the module was selected (-k): nothing to total
        pytest.skip(f"not all fuzz tests ran: {sorted(fuzz_tests - RAN)}")
    total = sum(SENT.values())
    print(f"malformed requests sent: {total} {dict(SENT)}")
    assert total >= MIN_MALFORMED, dict(SENT)
