"""The README's usage example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_usage_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "GARModel(backbone)" in b)
    exec(compile(example, str(README), "exec"), {})
    assert "(64,)" in capsys.readouterr().out
