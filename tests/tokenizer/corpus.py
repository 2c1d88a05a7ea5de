"""Deterministic test corpus for tokenizer conformance: many scripts, emoji sequences,
combining marks, every kind of whitespace run, digits, code, special-token literals and
near-misses, very long words, plus seeded random-Unicode fuzz."""
import random

SAMPLES = [
    "Hello world!", "Hello, world! How's it going? I'm fine; we'll see, they've gone, you'd know, she's here.",
    "HELLO 'S 'T 'RE 'VE 'M 'LL 'D", "  leading spaces", "trailing spaces   ", " ", "", "\n", "\n\n\n", "\t\t",
    "a\tb\r\nc\rd\n\ne", "mixed \u00a0nbsp\u3000ideographic\u2003em\u2009thin\u200bzwsp\u202fnarrow\u205fmath\u1680ogham",
    "line\u2028sep\u2029para\u0085nel\x0bvt\x0cff", "    indented code\n\tfoo()\n",
    "def f(x):\n    return x**2 + 3*x - 1  # comment\n", "for (int i = 0; i < n; ++i) { a[i] = b[i] * 2; }",
    "<html><body class=\"x\">&amp; &lt;tag&gt;</body></html>", "https://example.com/path?q=1&r=2#frag",
    "user@example.com", "C:\\Program Files\\App\\app.exe", "SELECT * FROM t WHERE a='b' AND c>=3;",
    "1234567890", "3.14159265358979323846264338327950288419716939937510", "1,000,000.00 $5 €10 ¥20 £30",
    "12345678901234567890123456789012345678901234567890", "٠١٢٣٤٥٦٧٨٩ ०१२३४५६७८९ ①②③ ½ ² Ⅻ",
    "Ünïcödé façade naïve café résumé Ångström", "Ελληνικά γράμματα ΑΒΓ", "Русский текст, ЁЖЗ.",
    "עברית טקסט", "العربية نص مع تشكيل: مَرْحَبًا", "हिन्दी पाठ क्षत्रिय", "বাংলা লেখা", "ภาษาไทย ข้อความ",
    "日本語のテキスト、カタカナ、ひらがな。", "中文文本，包括标点符号！你好世界", "한국어 텍스트 안녕하세요",
    "Tiếng Việt có dấu: Nguyễn", "ქართული", "Հայերեն", "አማርኛ", "ᚠᚢᚦᚨᚱᚲ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙 𝟘𝟙𝟚",
    "emoji 😀😃😄 👍🏽 👩‍👩‍👧‍👦 🏳️‍🌈 🇺🇸🇯🇵 ❤️ 🤷🏾‍♀️ 🧑🏻‍💻", "keycaps 1️⃣ #️⃣ *️⃣",
    "combining e\u0301 a\u0300\u0316 o\u0308\u0304 Z\u0351\u0352\u0353a\u035c\u035dl\u0360g\u0361o",
    "precomposed é vs decomposed e\u0301; Å vs A\u030a; ﬁ ligature; ｆｕｌｌｗｉｄｔｈ ＡＢＣ",
    "dotted İ ı ß ẞ ǅ ǈ ΐ Σσς", "zero\u200dwidth\u200cjoiners\ufeffbom", "\u00ad soft hyphen",
    "control \x01\x02\x1f\x7f chars", "replacement \ufffd char", "private \ue000\uf8ff use",
    "supplementary 𠀀𠀁 𪚥 𓀀𓀁", "a" * 300, "ab" * 500, "x" + "y" * 2000,
    "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "don't won't can't shouldn't y'all ma'am rock'n'roll", "it's IT'S It'S", "''''' \"\"\" ``` ~~~ ---",
    "!!!??? ... ,,, ;;; ::: ((( ))) [[[ ]]] {{{ }}}", "a.b.c d-e-f g_h_i j/k/l", "    \n    \n",
    "\r\n\r\n  \r\n", " \n \n ", "word\n\n\nword", "tab\t\t\tseparated\tvalues", "end with newline\n",
    "ALLCAPS CamelCase snake_case kebab-case SCREAMING_SNAKE", "I'm", "'s", "x's", " 's",
    "▁ already ▁ has ▁ metaspace ▁▁▁", "Ġ Ċ byte-level chars ĠĠ", "<0x41> <0xZZ> <0x0A>",
    "<unk> <s> </s> <pad> <mask> [CLS] [SEP] [UNK] [MASK]",
]


def special_literals(contents):
    out = []
    for c in contents[:60]:
        out += [c, "x" + c + "y", " " + c + " ", c + c, c[:-1], c[1:], c.upper(), c.lower(),
                "a " + c + "\n" + c + "b", c[: len(c) // 2] + " " + c[len(c) // 2:]]
    return out


RANGES = [
    (0x20, 0x7E, 30), (0x09, 0x0D, 4), (0xA0, 0x24F, 6), (0x300, 0x36F, 3), (0x370, 0x52F, 3),
    (0x590, 0x6FF, 3), (0x900, 0x97F, 2), (0xE00, 0xE7F, 2), (0x1100, 0x11FF, 1), (0x2000, 0x206F, 3),
    (0x20A0, 0x2BFF, 3), (0x3000, 0x30FF, 3), (0x4E00, 0x9FFF, 6), (0xAC00, 0xD7A3, 3), (0xFF00, 0xFFEF, 2),
    (0x1F300, 0x1FAFF, 5), (0x1D400, 0x1D7FF, 1), (0x20000, 0x2A6DF, 1), (0xE000, 0xF8FF, 1),
    (0x80, 0x9F, 1), (0xFE00, 0xFE0F, 1), (0x1F3FB, 0x1F3FF, 1), (0x200B, 0x200D, 2),
]


def random_text(rng, n):
    weights = [w for _, _, w in RANGES]
    chars = []
    for _ in range(n):
        lo, hi, _ = rng.choices(RANGES, weights)[0]
        cp = rng.randint(lo, hi)
        if 0xD800 <= cp <= 0xDFFF:
            cp = 0x41
        chars.append(chr(cp))
        if rng.random() < 0.15:
            chars.append(" " * rng.randint(1, 3))
    return "".join(chars)


def fuzz(seed, count, max_len=80):
    rng = random.Random(seed)
    return [random_text(rng, rng.randint(1, max_len)) for _ in range(count)]


def build(special_contents=(), seed=1234, n_fuzz=1500):
    texts = list(SAMPLES)
    texts += special_literals(list(special_contents))
    texts += fuzz(seed, n_fuzz)
    # Mixed documents: samples glued together with whitespace and specials.
    rng = random.Random(seed + 1)
    sc = list(special_contents)
    for _ in range(200):
        parts = rng.sample(SAMPLES, 4)
        if sc:
            parts.insert(rng.randint(0, 4), rng.choice(sc))
        texts.append(rng.choice(["", " ", "\n", "  ", "\t"]).join(parts))
    return texts
