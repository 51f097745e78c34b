"""Test texts for the tokenizer: hand-written edge cases and seeded fuzz strings."""
import unicodedata

WHITESPACE = ["\t", "\n", "\x0b", "\x0c", "\r", " ", "\x85", "\xa0", "\u1680"] + [chr(c) for c in range(0x2000, 0x200B)] \
    + ["\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u180e", "\u200b", "\ufeff"]

SPECIAL_FRAGMENTS = ["<|begin_of_text|>", "<|eot_id|>", "<|eot", "eot_id|>", "<|end|>", "<|end|>\n", "<|assistant|>",
                     "<s>", "</s>", "</s>x", "<unk>", "[INST]", "[/INST]", "<think>", "</think>", "<tool_call>",
                     "<|im_start|>", "<|im_end|>", "<start_of_turn>", "<|endoftext|>", "<fim_prefix>", "<|lsp|>",
                     "word", "Hello", "<bos>", "[REFERENCE_DOC_1]", "<|fim_prefix|>", "<|pad|>"]


def edge_cases():
    cases = [
        "", " ", "  ", "a", " a", "  a", "\n", "\n\n\n", "Hello world", " Hello world", "Hello  world  ",
        "don't can't I'm you're we've they'll he'd IT'S DON'T", "don'ſt", "'s 's' ''", "It’s curly",
        "CRLF line\r\nnext line\r\n\r\nend\r", "tabs\tand\t\ttabs", "trailing spaces   \n  leading",
        "1 12 123 1234 12345 123456789 3.14159 1,000,000 ٣٤٥ ١٢٣٤ १२३४ 一二三",
        "e\u0301 a\u0308 n\u0303 \u0915\u094d\u0937 ḁ̶̢̛ Zalgo: Z̸̢̧̛͍̺̩̱̝̯̬̾̓̉̌͜a̵̢̗̲̓l̷̩͊g̶͎̈o̵̤͝",
        "Ａｅ ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
        "emoji 👍 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇩🇪🇫🇷 ❤️ 1️⃣",
        "New letters: 𑄃 𞓐 𐵀 𐖀 𑶠 𞅀 𖩰 ꯀ ᜀ 𑤀𑤰 \U000105c0 \U00010d40 \U0001e5d0 \U00031350 \U0002ebf0",
        "Dives Akuru \U00011935\U00011930 composed?",
        "Українська мова, Ελληνικά, עברית, العربية, हिन्दी, বাংলা, தமிழ், ไทย, ລາວ, ខ្មែរ, 한국어, 日本語のテキスト, 中文文本",
        "mixed\u00a0nbsp and\u3000ideographic and\u2009thin",
        "<|begin_of_text|>Hello<|eot_id|>", "<s>Hello</s>", "Hello </s> world", " <s> a", "<<s>>",
        "<|end|>\n<|assistant|>\n  hi", "ok<|end|>\n<|assistant|>", "x   <|lsp|>y", "sword word words word.",
        "Hello Hello</s>x  </s>xHello", "[INST] What? [/INST] Fine.[TOOL_CALLS][REFERENCE_DOC_1]",
        "<think>\nreason\n</think>\n\n<tool_call>{\"a\":1}</tool_call>", "<start_of_turn>user\nhi<end_of_turn>\n",
        "def f(x):\n    return x  # comment\n\n\tif x:\n\t\tpass\n", "        deeply   indented",
        "a\u0085b\u2028c\u2029d\x0ce\x0bf", "\ufeffBOM at start", "URL https://example.com/a?b=c&d=e#f",
        "$$ ^^ ~~ ## && -- ++ ** || \\\\ // .. ?? !! @@", "a" * 300, "ab" * 200 + " " + "xyz" * 120,
        "\u0130stanbul \u0131 \u017f \u1e9e \ufb01", "\U0001F600" * 5, "\x00\x01\x02 control \x7f chars",
        "αβγ ΑΒΓ", "Ǆǅǆ ǈ", "ﷺ ﷻ ﷽",
    ]
    cases += [w + "x" + w for w in WHITESPACE]
    cases += ["x" + w * 3 + "y" for w in WHITESPACE]
    return cases


RANGES = [(0x20, 0x7E, 30), (0xA0, 0x24F, 6), (0x300, 0x36F, 3), (0x370, 0x3FF, 3), (0x400, 0x4FF, 4),
          (0x590, 0x6FF, 3), (0x900, 0x97F, 3), (0xE00, 0xE7F, 2), (0x1100, 0x11FF, 1), (0x3040, 0x30FF, 3),
          (0x4E00, 0x9FFF, 5), (0xAC00, 0xD7A3, 3), (0x1F300, 0x1FAFF, 3), (0x20000, 0x2A6DF, 1),
          (0x10000, 0x1FFFF, 1), (0xFE00, 0xFE0F, 1), (0x1F3FB, 0x1F3FF, 1)]


def fuzz_texts(rng, count):
    weights = [w for _, _, w in RANGES]
    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 25)):
            kind = rng.random()
            if kind < 0.45:
                lo, hi, _ = rng.choices(RANGES, weights)[0]
                cp = rng.randint(lo, hi)
                # Assigned code points only: those new since Unicode 14 are the edge cases' business.
                while unicodedata.category(chr(cp)) in ("Cn", "Cs"):
                    cp = rng.randint(lo, hi)
                parts.append(chr(cp) * rng.choice([1, 1, 1, 2, 3]))
            elif kind < 0.6:
                parts.append(rng.choice(WHITESPACE) * rng.choice([1, 1, 2, 5]))
            elif kind < 0.7:
                parts.append(rng.choice(SPECIAL_FRAGMENTS))
            elif kind < 0.8:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 9))))
            elif kind < 0.9:
                parts.append(rng.choice(["'s", "'T", "'re", "'VE", "'m", "'ll", "'d", "n't", "'ſ"]))
            else:
                parts.append(rng.choice(["the", " and", "Hello", " world", "ing", "tion", " über", " мир", "世界"]))
        out.append("".join(parts))
    return out
