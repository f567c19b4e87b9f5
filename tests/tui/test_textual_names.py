"""No chat_tui class reuses a name its Textual base class has, but for the hooks Textual asks
subclasses to override: ``ChatApp._log`` once replaced ``App._log`` (and crashed the app under
``textual run --dev``), ``MessageLog.remove(key)`` replaced ``Widget.remove()``, ``Changes.time``
overwrote ``Message.time``."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

from textual.app import App
from textual.message import Message

ROOT = Path(__file__).resolve().parents[2] / "chat_tui"

# What Textual means subclasses to set or override (class settings, handlers, render hooks), and
# the public attributes an app or widget is meant to assign.
MEANT_TO_OVERRIDE = {
    "ALLOW_SELECT", "AUTO_FOCUS", "BINDINGS", "COMPONENT_CLASSES", "CSS_PATH", "DEFAULT_CSS",
    "HORIZONTAL_BREAKPOINTS", "TITLE", "compose", "control", "render", "render_line", "get_selection",
    "selection_updated", "notify_style_update", "watch_scroll_y", "_on_key", "_on_paste",
    "border_title", "cursor_position", "highlighted", "sub_title", "title", "tooltip", "value", "virtual_size",
    "can_focus", "can_focus_children", "deliver_screenshot",
}
# Set on every class by Textual's own machinery (class creation, ``__init_subclass__``).
SET_BY_TEXTUAL = {
    "_computes", "_css_type_name", "_css_type_names", "_decorated_handlers", "_inherit_bindings",
    "_inherit_component_classes", "_inherit_css", "_merged_bindings", "_reactives", "bubble", "no_dispatch",
    "verbose",
}


def _textual_names(cls: type) -> set[str]:
    """Every name the Textual classes ``cls`` derives from define, on the class or an instance."""
    names: set[str] = set()
    for base in cls.__mro__[1:]:
        if base.__module__.startswith("textual"):
            names |= set(vars(base)) | set(getattr(base, "__slots__", ()))
    first = next(b for b in cls.__mro__[1:] if b.__module__.startswith("textual"))
    if issubclass(first, App):
        names |= set(vars(first()))
    elif not issubclass(first, Message):
        with App()._context():
            names |= set(vars(first()))
    return names


def _own_names(node: ast.ClassDef, cls: type) -> set[str]:
    """Names ``cls`` defines in its body or assigns to ``self`` in its own methods."""
    names = set(vars(cls))
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(item):
                if (isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store)
                        and isinstance(sub.value, ast.Name) and sub.value.id == "self"):
                    names.add(sub.attr)
    return names


def _textual_classes() -> list[tuple[str, ast.ClassDef, type]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        module = importlib.import_module(".".join(path.relative_to(ROOT.parent).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            candidates = [getattr(module, node.name, None)] + [
                getattr(v, node.name, None) for v in vars(module).values() if inspect.isclass(v)]
            for cls in candidates:
                if (inspect.isclass(cls) and cls.__module__ == module.__name__
                        and any(b.__module__.startswith("textual") for b in cls.__mro__[1:])):
                    found.append((f"{module.__name__}.{cls.__qualname__}", node, cls))
                    break
    return found


def test_no_class_shadows_a_textual_name() -> None:
    classes = _textual_classes()
    assert {"chat_tui.app.ChatApp", "chat_tui.widgets.message_log.MessageLog",
            "chat_tui.connection.Changes"} <= {name for name, _, _ in classes}
    clashes = {}
    for name, node, cls in classes:
        own = {n for n in _own_names(node, cls) if not n.startswith("__")}
        clash = sorted(own & _textual_names(cls) - MEANT_TO_OVERRIDE - SET_BY_TEXTUAL)
        if clash:
            clashes[name] = clash
    assert not clashes, clashes
