"""Make the README's screenshots from the real app against a real, seeded server.

    .venv/bin/python screenshots/make.py        # writes screenshots/*.svg

A throw-away server (in this process, on an ephemeral port, data in a temp
directory); Bob and Carol are SDK clients, Alice is the real chat-tui app driven
by Textual's Pilot, as in the tests.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chat_server.client import Client  # noqa: E402
from chat_server.server import ChatServer, ServerConfig  # noqa: E402
from chat_tui.app import ChatApp  # noqa: E402
from chat_tui.screens import HelpScreen  # noqa: E402

OUT = Path(__file__).resolve().parent
SIZE = (110, 30)


async def settle(pilot, seconds: float = 0.3) -> None:  # noqa: ANN001
    await pilot.pause(seconds)
    await pilot.wait_for_scheduled_animations()


async def make() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = ChatServer(ServerConfig(data_dir=Path(tmp), port=0))
        await server.start()
        url = f"127.0.0.1:{server.port}"
        try:
            bob = await Client.connect(url, "quickstart-chat")
            await bob.call("set_name", "Bob")
            await bob.call("send_message", "Morning! Is the build green again?")
            carol = await Client.connect(url, "quickstart-chat")
            app = ChatApp(server=url)
            async with app.run_test(size=SIZE) as pilot:
                app.composer.cursor_blink = False
                while app.state.me is None:
                    await pilot.pause(0.05)
                await pilot.press(*"/name Alice", "enter")
                await settle(pilot)
                await pilot.press(*"It is: the flaky test was a race in the reconnect loop, fixed on main.", "enter")
                await settle(pilot)
                await carol.call("send_message", "hello? first time here")
                await settle(pilot)
                await pilot.press(*"Welcome! Type /name to pick a name; /help shows the rest.", "enter")
                await settle(pilot)
                await carol.call("set_name", "Carol")
                await carol.call("send_message", "Thanks Alice, that worked. Where do I read about the protocol?")
                await settle(pilot)
                await bob.call("send_message", "docs/protocol.md has every message, with an example exchange.")
                await bob.close()
                await settle(pilot, 0.6)
                app.save_screenshot("conversation.svg", str(OUT))

                await pilot.press("f1")
                await settle(pilot)
                assert isinstance(app.screen, HelpScreen)
                app.save_screenshot("help.svg", str(OUT))
                await pilot.press("escape")
                await settle(pilot)

                await pilot.press(*"/nick Al", "enter")
                await settle(pilot)
                app.composer.value = ""
                await pilot.press(*"/name", "enter")
                await settle(pilot, 0.5)
                app.save_screenshot("error.svg", str(OUT))

                await pilot.resize_terminal(60, 24)
                await settle(pilot, 0.5)
                app.save_screenshot("narrow.svg", str(OUT))
                await app.connection.close()
            await carol.close()
        finally:
            await server.stop()
    print("wrote", ", ".join(sorted(p.name for p in OUT.glob("*.svg"))))


if __name__ == "__main__":
    asyncio.run(make())
