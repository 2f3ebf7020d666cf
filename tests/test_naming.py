"""Names: identifiers spell -ize, as Keras does (initialize_from, normalization), so that a grep
for one spelling finds every place."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


# British stems whose American -ize form Keras and emgtf's identifiers use (prose may keep either).
_ISE_STEMS = ("initialis", "normalis", "quantis", "regularis", "serialis", "summaris", "optimis",
              "personalis", "synchronis", "minimis", "maximis", "randomis", "tokenis", "visualis")


def test_identifiers_spell_ize_like_keras():
    import re
    import tokenize

    pattern = re.compile("|".join(_ISE_STEMS), re.IGNORECASE)
    found = []
    for root in ("emgtf", "tests", "scripts"):
        for path in sorted((REPO / root).rglob("*.py")):
            with open(path, "rb") as f:
                for token in tokenize.tokenize(f.readline):
                    if token.type == tokenize.NAME and pattern.search(token.string):
                        found.append(f"{path.relative_to(REPO)}:{token.start[0]}: {token.string}")
    assert not found, "\n".join(found)
