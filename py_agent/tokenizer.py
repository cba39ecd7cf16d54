"""BERT WordPiece tokenization that gives the same ids as Hugging Face `tokenizers` does
for all-MiniLM-L6-v2 (BertNormalizer, BertPreTokenizer, WordPiece, `[CLS] $A [SEP]`).

Pure Python on `re` and `unicodedata`, so the same code runs in CPython and in Pyodide.
The work per character happens inside `re`, `str` and `unicodedata` (all C); Python
code runs once per word, a word's pieces are cached, and a long text is read only as far
as it takes to fill `max_tokens`.

What HF does, in order, and the places where it is not what Python's own
`str` methods would do:

1. Special tokens (`[CLS]`, `[MASK]`, ...) written in the raw text are tokens: HF splits
   them out before normalising, matched verbatim, so `[MASK]` is id 103 but `[mask]` is
   `[`, `mask`, `]`.
2. Clean text: drop NUL, U+FFFD and control characters; whitespace separates words.
   "Control" is General_Category Cc/Cf/Co/Cs *as of Unicode 8.0* (the tables of the
   `unicode_categories` crate HF uses), so zero-width joiners and soft hyphens vanish but
   code points unassigned in 8.0 stay. Whitespace is Rust's `char::is_whitespace`,
   except that U+000B, U+000C and U+0085 are controls and are dropped first.
3. Spaces around CJK ideographs, in HF's ranges: U+2B820..U+2B91F is *not* one of them
   (HF's table starts that block at U+2B920; BERT's starts at U+2B820).
4. Strip accents (only when lowercasing): NFD, then drop nonspacing marks (Mn, again as
   of Unicode 8.0: U+1734 is dropped, U+0898 kept).
5. Lowercase character by character, *after* stripping: no final-sigma rule, so 'ΟΔΟΣ'
   becomes 'οδοσ' where `str.lower()` gives 'οδος'.
6. Split on whitespace, then isolate each punctuation character: ASCII 33-47, 58-64,
   91-96, 123-126, or General_Category P* as of Unicode 8.0.
7. WordPiece: greedy longest match first, continuations prefixed with `##`; a word longer
   than 100 characters (code points), or one with any part that matches nothing, is one
   `[UNK]`.
8. `[CLS]` + pieces + `[SEP]`, truncated to `max_tokens` ids in all.

NFD and case mapping come from Python's `unicodedata` (Unicode 14.0 in CPython 3.11, 15.0
in Pyodide's 3.12). They differ from HF's in two places, neither of which can change an
id with this vocabulary: HF does not decompose U+11938, and HF lowercases 55 capitals
new in Unicode 16 (no form of either is in the vocabulary). The tests compare every code
point of planes 0 and 1, and samples of the others, with HF.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import TypedDict, Unpack

BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CONTINUATION_PREFIX = "##"
WORD_CACHE_SIZE = 8192


def _ranges(table: str) -> list[tuple[int, int]]:
    """Code point ranges from hex text ("0300-036F 0483 ...")."""
    ranges = []
    for item in table.split():
        first, _, last = item.partition("-")
        ranges.append((int(first, 16), int(last or first, 16)))
    return ranges


def _char_class(ranges: Iterable[tuple[int, int]]) -> str:
    """The body of a regex character class. Characters, not escapes: `re` parses a
    `\\U0001d173` many times slower than the character itself."""

    def char(code: int) -> str:
        return "\\" + chr(code) if chr(code) in "\\[]^-" else chr(code)

    return "".join(char(first) + "-" + char(last) for first, last in ranges)


def _bmp(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(first, min(last, 0xFFFF)) for first, last in ranges if first <= 0xFFFF]


def _astral_chars(ranges: list[tuple[int, int]]) -> frozenset[str]:
    return frozenset(
        chr(code) for first, last in ranges for code in range(max(first, 0x10000), last + 1)
    )


# Dropped by clean_text: NUL, U+FFFD, and Cc/Cf/Co of Unicode 8.0 except \t \n \r, plus
# the surrogates (Cs: a Python str can hold them, HF's input cannot).
_CONTROL = _ranges("""
0000-0008 000B-000C 000E-001F 007F-009F 00AD 0600-0605 061C 06DD 070F 180E 200B-200F
202A-202E 2060-2064 2066-206F D800-F8FF FEFF FFF9-FFFB FFFD 110BD 1BCA0-1BCA3 1D173-1D17A
E0001 E0020-E007F F0000-FFFFD 100000-10FFFD
""")

# Rust's char::is_whitespace (Unicode White_Space) less what _CONTROL drops first.
_WHITESPACE = _ranges("""
0009-000A 000D 0020 00A0 1680 2000-200A 2028-2029 202F 205F 3000
""")

_CJK = _ranges("""
3400-4DBF 4E00-9FFF F900-FAFF 20000-2A6DF 2A700-2B73F 2B740-2B81F 2B920-2CEAF 2F800-2FA1F
""")

# General_Category Mn as of Unicode 8.0.
_NONSPACING_MARKS = _ranges("""
0300-036F 0483-0487 0591-05BD 05BF 05C1-05C2 05C4-05C5 05C7 0610-061A 064B-065F 0670
06D6-06DC 06DF-06E4 06E7-06E8 06EA-06ED 0711 0730-074A 07A6-07B0 07EB-07F3 0816-0819
081B-0823 0825-0827 0829-082D 0859-085B 08E3-0902 093A 093C 0941-0948 094D 0951-0957
0962-0963 0981 09BC 09C1-09C4 09CD 09E2-09E3 0A01-0A02 0A3C 0A41-0A42 0A47-0A48 0A4B-0A4D
0A51 0A70-0A71 0A75 0A81-0A82 0ABC 0AC1-0AC5 0AC7-0AC8 0ACD 0AE2-0AE3 0B01 0B3C 0B3F
0B41-0B44 0B4D 0B56 0B62-0B63 0B82 0BC0 0BCD 0C00 0C3E-0C40 0C46-0C48 0C4A-0C4D 0C55-0C56
0C62-0C63 0C81 0CBC 0CBF 0CC6 0CCC-0CCD 0CE2-0CE3 0D01 0D41-0D44 0D4D 0D62-0D63 0DCA
0DD2-0DD4 0DD6 0E31 0E34-0E3A 0E47-0E4E 0EB1 0EB4-0EB9 0EBB-0EBC 0EC8-0ECD 0F18-0F19 0F35
0F37 0F39 0F71-0F7E 0F80-0F84 0F86-0F87 0F8D-0F97 0F99-0FBC 0FC6 102D-1030 1032-1037
1039-103A 103D-103E 1058-1059 105E-1060 1071-1074 1082 1085-1086 108D 109D 135D-135F
1712-1714 1732-1734 1752-1753 1772-1773 17B4-17B5 17B7-17BD 17C6 17C9-17D3 17DD 180B-180D
18A9 1920-1922 1927-1928 1932 1939-193B 1A17-1A18 1A1B 1A56 1A58-1A5E 1A60 1A62 1A65-1A6C
1A73-1A7C 1A7F 1AB0-1ABD 1B00-1B03 1B34 1B36-1B3A 1B3C 1B42 1B6B-1B73 1B80-1B81 1BA2-1BA5
1BA8-1BA9 1BAB-1BAD 1BE6 1BE8-1BE9 1BED 1BEF-1BF1 1C2C-1C33 1C36-1C37 1CD0-1CD2 1CD4-1CE0
1CE2-1CE8 1CED 1CF4 1CF8-1CF9 1DC0-1DF5 1DFC-1DFF 20D0-20DC 20E1 20E5-20F0 2CEF-2CF1 2D7F
2DE0-2DFF 302A-302D 3099-309A A66F A674-A67D A69E-A69F A6F0-A6F1 A802 A806 A80B A825-A826
A8C4 A8E0-A8F1 A926-A92D A947-A951 A980-A982 A9B3 A9B6-A9B9 A9BC A9E5 AA29-AA2E AA31-AA32
AA35-AA36 AA43 AA4C AA7C AAB0 AAB2-AAB4 AAB7-AAB8 AABE-AABF AAC1 AAEC-AAED AAF6 ABE5 ABE8
ABED FB1E FE00-FE0F FE20-FE2F 101FD 102E0 10376-1037A 10A01-10A03 10A05-10A06 10A0C-10A0F
10A38-10A3A 10A3F 10AE5-10AE6 11001 11038-11046 1107F-11081 110B3-110B6 110B9-110BA
11100-11102 11127-1112B 1112D-11134 11173 11180-11181 111B6-111BE 111CA-111CC 1122F-11231
11234 11236-11237 112DF 112E3-112EA 11300-11301 1133C 11340 11366-1136C 11370-11374
114B3-114B8 114BA 114BF-114C0 114C2-114C3 115B2-115B5 115BC-115BD 115BF-115C0 115DC-115DD
11633-1163A 1163D 1163F-11640 116AB 116AD 116B0-116B5 116B7 1171D-1171F 11722-11725
11727-1172B 16AF0-16AF4 16B30-16B36 16F8F-16F92 1BC9D-1BC9E 1D167-1D169 1D17B-1D182
1D185-1D18B 1D1AA-1D1AD 1D242-1D244 1DA00-1DA36 1DA3B-1DA6C 1DA75 1DA84 1DA9B-1DA9F
1DAA1-1DAAF 1E8D0-1E8D6 E0100-E01EF
""")

# ASCII 33-47, 58-64, 91-96, 123-126, and General_Category P* as of Unicode 8.0.
_PUNCTUATION = _ranges("""
0021-002F 003A-0040 005B-0060 007B-007E 00A1 00A7 00AB 00B6-00B7 00BB 00BF 037E 0387
055A-055F 0589-058A 05BE 05C0 05C3 05C6 05F3-05F4 0609-060A 060C-060D 061B 061E-061F
066A-066D 06D4 0700-070D 07F7-07F9 0830-083E 085E 0964-0965 0970 0AF0 0DF4 0E4F 0E5A-0E5B
0F04-0F12 0F14 0F3A-0F3D 0F85 0FD0-0FD4 0FD9-0FDA 104A-104F 10FB 1360-1368 1400 166D-166E
169B-169C 16EB-16ED 1735-1736 17D4-17D6 17D8-17DA 1800-180A 1944-1945 1A1E-1A1F 1AA0-1AA6
1AA8-1AAD 1B5A-1B60 1BFC-1BFF 1C3B-1C3F 1C7E-1C7F 1CC0-1CC7 1CD3 2010-2027 2030-2043
2045-2051 2053-205E 207D-207E 208D-208E 2308-230B 2329-232A 2768-2775 27C5-27C6 27E6-27EF
2983-2998 29D8-29DB 29FC-29FD 2CF9-2CFC 2CFE-2CFF 2D70 2E00-2E2E 2E30-2E42 3001-3003
3008-3011 3014-301F 3030 303D 30A0 30FB A4FE-A4FF A60D-A60F A673 A67E A6F2-A6F7 A874-A877
A8CE-A8CF A8F8-A8FA A8FC A92E-A92F A95F A9C1-A9CD A9DE-A9DF AA5C-AA5F AADE-AADF AAF0-AAF1
ABEB FD3E-FD3F FE10-FE19 FE30-FE52 FE54-FE61 FE63 FE68 FE6A-FE6B FF01-FF03 FF05-FF0A
FF0C-FF0F FF1A-FF1B FF1F-FF20 FF3B-FF3D FF3F FF5B FF5D FF5F-FF65 10100-10102 1039F 103D0
1056F 10857 1091F 1093F 10A50-10A58 10A7F 10AF0-10AF6 10B39-10B3F 10B99-10B9C 11047-1104D
110BB-110BC 110BE-110C1 11140-11143 11174-11175 111C5-111C9 111CD 111DB 111DD-111DF
11238-1123D 112A9 114C6 115C1-115D7 11641-11643 1173C-1173E 12470-12474 16A6E-16A6F 16AF5
16B37-16B3B 16B44 1BC9F 1DA87-1DA8B
""")

# `re` tests a character against a class's ranges above U+FFFF one by one, which makes a
# class with many of them several times slower on *every* character. So the patterns
# below hold the BMP part of each table, and the few astral characters that are marks,
# punctuation or CJK are handled by _ASTRAL_RE and WordPieceTokenizer._astral_char. The
# control class keeps its six astral ranges: dropping must happen before NFD.
_CONTROL_RE = re.compile(f"[{_char_class(_CONTROL)}]+")
_ASCII_CONTROL = str.maketrans(dict.fromkeys([*range(9), 11, 12, *range(14, 32), 127]))
_NONSPACING_MARK_RE = re.compile(f"[{_char_class(_bmp(_NONSPACING_MARKS))}]+")
# A word is a run of characters between whitespace, punctuation and CJK ideographs, or
# one punctuation character or ideograph: what HF's "space out CJK, map whitespace to
# spaces, split on spaces, isolate punctuation" leaves, in one pass.
_SINGLES = _char_class(_bmp(_PUNCTUATION)) + _char_class(_bmp(_CJK))
_WORD_RE = re.compile(f"[^{_char_class(_WHITESPACE)}{_SINGLES}]+|[{_SINGLES}]")
# The blocks of the astral planes that hold marks, punctuation or CJK; not the emoji
# from U+1F000 on, which are none of them.
_ASTRAL_RE = re.compile("[\\U00010000-\\U0001e8ff\\U00020000-\\U0002ffff\\U000e0100-\\U000e01ef]")
_ASTRAL_MARKS = _astral_chars(_NONSPACING_MARKS)
_ASTRAL_PUNCTUATION = _astral_chars(_PUNCTUATION)
_ASTRAL_CJK = [(first, last) for first, last in _CJK if first > 0xFFFF]
# Long texts are normalised and split a chunk at a time, stopping once there are enough
# pieces. A chunk ends before whitespace or punctuation: each ends a word and is a
# starter that NFD keeps a starter, so no mark moves across it and the chunks' words are
# exactly the whole text's words.
_CHUNK_CHARS = 512
_CHUNK_END_RE = re.compile(f"[{_char_class(_WHITESPACE)}{_char_class(_bmp(_PUNCTUATION))}]")
# Rust's str::trim_end (White_Space), which HF applies to each vocabulary line.
_LINE_END_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


class TokenizerSettings(TypedDict, total=False):
    lowercase: bool
    max_tokens: int
    max_chars_per_word: int
    unk_token: str
    cls_token: str
    sep_token: str
    special_tokens: Sequence[str]


class WordPieceTokenizer:
    """Text to BERT input ids. `vocab[i]` is the token with id `i`.

    `lowercase` also strips accents (HF's `strip_accents: null` follows it).
    `special_tokens` are the tokens recognised verbatim in the raw text; each must be in
    the vocabulary.
    """

    def __init__(
        self,
        vocab: Sequence[str],
        *,
        lowercase: bool = True,
        max_tokens: int = 256,
        max_chars_per_word: int = 100,
        unk_token: str = "[UNK]",
        cls_token: str = "[CLS]",
        sep_token: str = "[SEP]",
        special_tokens: Sequence[str] = BERT_SPECIAL_TOKENS,
    ) -> None:
        if max_tokens < 2:
            raise ValueError(f"max_tokens must be at least 2 ([CLS] and [SEP]), got {max_tokens}")
        if max_chars_per_word < 1:
            raise ValueError(f"max_chars_per_word must be at least 1, got {max_chars_per_word}")
        # A token listed twice keeps its last id, as HF's vocabulary map does.
        self._vocab = {token: index for index, token in enumerate(vocab)}
        self._tokens = list(vocab)
        missing = [
            token
            for token in (unk_token, cls_token, sep_token, *special_tokens)
            if token not in self._vocab
        ]
        if missing:
            raise ValueError(
                f"vocabulary of {len(self._tokens)} tokens has no {', '.join(map(repr, missing))}"
            )
        if "" in special_tokens:
            raise ValueError("special_tokens must not contain an empty string")
        self._lowercase = lowercase
        self._max_pieces = max_tokens - 2
        self._max_chars_per_word = max_chars_per_word
        self._unk_id = self._vocab[unk_token]
        self._cls_id = self._vocab[cls_token]
        self._sep_id = self._vocab[sep_token]
        self._special_ids = {token: self._vocab[token] for token in special_tokens}
        # Longest first, so that at one position the longest special token wins (HF
        # matches leftmost-longest).
        by_length = sorted(self._special_ids, key=len, reverse=True)
        self._special_re = (
            re.compile("(" + "|".join(map(re.escape, by_length)) + ")") if by_length else None
        )
        # No piece is longer than the longest vocabulary entry, so the greedy match never
        # needs to try longer slices.
        self._longest = max(map(len, self._vocab))
        self._word_ids = functools.lru_cache(maxsize=WORD_CACHE_SIZE)(self._wordpiece)

    @classmethod
    def from_vocab_text(
        cls, text: str, **settings: Unpack[TokenizerSettings]
    ) -> WordPieceTokenizer:
        """From the content of a `vocab.txt`: one token a line, the id is the line number."""
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        return cls([line.rstrip(_LINE_END_SPACE) for line in lines], **settings)

    def encode(self, text: str) -> list[int]:
        """Input ids: `[CLS]`, the word pieces, `[SEP]`, at most `max_tokens` in all."""
        if not isinstance(text, str):
            raise TypeError(
                f"WordPieceTokenizer.encode expects a str, got {type(text).__name__}: {text!r:.80}"
            )
        budget = self._max_pieces
        ids: list[int] = []
        parts = self._special_re.split(text) if self._special_re else [text]
        # split() with one group alternates: text, special token, text, ...
        for index, part in enumerate(parts):
            if index % 2:
                ids.append(self._special_ids[part])
            elif part:
                ids.extend(self._piece_ids(part, budget - len(ids)))
            if len(ids) >= budget:
                del ids[budget:]
                break
        return [self._cls_id, *ids, self._sep_id]

    def tokens(self, text: str) -> list[str]:
        """`encode(text)` as token strings."""
        return [self._tokens[index] for index in self.encode(text)]

    def _piece_ids(self, text: str, limit: int) -> list[int]:
        """The pieces of `text`, at least the first `limit` of them."""
        ids: list[int] = []
        start = 0
        while start < len(text) and len(ids) < limit:
            end = len(text)
            if end - start > 2 * _CHUNK_CHARS:
                cut = _CHUNK_END_RE.search(text, start + _CHUNK_CHARS)
                if cut is not None:
                    end = cut.start()
            words = self._words(text[start:end])
            # Every word gives at least one piece.
            del words[limit - len(ids) :]
            ids.extend(chain.from_iterable(map(self._word_ids, words)))
            start = end
        return ids

    def _words(self, text: str) -> list[str]:
        """Normalise like BertNormalizer and split like BertPreTokenizer."""
        if text.isascii():
            text = text.translate(_ASCII_CONTROL)
        else:
            text = _CONTROL_RE.sub("", text)
            if self._lowercase:
                text = _NONSPACING_MARK_RE.sub("", unicodedata.normalize("NFD", text))
                # HF lowercases one character at a time: no final sigma.
                text = text.replace("\u03a3", "\u03c3")
            text = _ASTRAL_RE.sub(self._astral_char, text)
        if self._lowercase:
            text = text.lower()
        return _WORD_RE.findall(text)

    def _astral_char(self, match: re.Match[str]) -> str:
        char = match.group()
        code = ord(char)
        if char in _ASTRAL_PUNCTUATION or any(lo <= code <= hi for lo, hi in _ASTRAL_CJK):
            return f" {char} "
        if self._lowercase and char in _ASTRAL_MARKS:
            return ""
        return char

    def _wordpiece(self, word: str) -> tuple[int, ...]:
        length = len(word)
        if length > self._max_chars_per_word:
            return (self._unk_id,)
        whole = self._vocab.get(word)
        if whole is not None:
            return (whole,)
        ids = []
        start = 0
        while start < length:
            match = self._longest_piece(word, start)
            if match is None:
                return (self._unk_id,)
            piece_id, start = match
            ids.append(piece_id)
        return tuple(ids)

    def _longest_piece(self, word: str, start: int) -> tuple[int, int] | None:
        """The id and end of the longest vocabulary piece of `word` starting at `start`."""
        vocab = self._vocab
        for end in range(min(len(word), start + self._longest), start, -1):
            piece = word[start:end] if start == 0 else CONTINUATION_PREFIX + word[start:end]
            piece_id = vocab.get(piece)
            if piece_id is not None:
                return piece_id, end
        return None
