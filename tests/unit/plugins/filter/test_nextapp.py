"""next_output: the shape an app's next.config asks for, read as text."""

from __future__ import annotations

import pytest

from ansible_collections.hardenkit.nodeapp.plugins.filter.nextapp import next_output


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "next.config.ts",
            'const nextConfig: NextConfig = {\n  output: "standalone",\n};\n',
            "standalone",
        ),
        (
            "next.config.mjs",
            "export default { output: 'standalone', reactStrictMode: true }\n",
            "standalone",
        ),
        ("next.config.js", "module.exports = {\n  output: `export`,\n}\n", "export"),
        ("next.config.ts", "const c = {\n  /* config options here */\n};\n", ""),
        # commented out, either way
        ("next.config.js", "module.exports = {\n  // output: 'standalone',\n}\n", ""),
        ("next.config.js", "module.exports = {\n  /* output: 'standalone', */\n}\n", ""),
        # computed at build time: not seen (app_release_standalone says it)
        ("next.config.js", "module.exports = { output: process.env.NEXT_OUTPUT }\n", ""),
    ],
    ids=["ts", "mjs-one-line", "export", "none", "line-comment", "block-comment", "computed"],
)
def test_the_output_the_config_sets(tmp_path, name, text, expected):
    (tmp_path / name).write_text(text)
    assert next_output(str(tmp_path)) == expected


def test_no_config_means_no_special_output(tmp_path):
    assert next_output(str(tmp_path)) == ""
