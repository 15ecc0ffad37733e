"""Email templates: `<name>.txt` and `<name>.html` (Jinja2) in a module's own directory.

The HTML template escapes every value (autoescape); the text one has nothing to escape, but a
value with line breaks could still forge lines ("Reset link: …") in it, so every string
handed to a template is put on one line first. The subject is rendered from
`<name>.subject.txt` the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from touchstone.core.email.message import Mail, header_text

MAX_VALUE = 2000


class EmailTemplates:
    def __init__(self, directory: Path) -> None:
        self.environment = Environment(
            loader=FileSystemLoader(directory),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def render(self, name: str, to_address: str, to_name: str, **context: Any) -> Mail:
        values = {
            key: header_text(value, MAX_VALUE) if isinstance(value, str) else value
            for key, value in context.items()
        }
        values["to_name"] = header_text(to_name)
        values["to_address"] = to_address

        def render_one(template: str) -> str:
            return self.environment.get_template(template).render(values)

        return Mail(
            to_address=to_address,
            to_name=values["to_name"],
            subject=header_text(render_one(f"{name}.subject.txt"), 300),
            text=render_one(f"{name}.txt"),
            html=render_one(f"{name}.html"),
        )
