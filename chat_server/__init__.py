"""chat_server: hosts db_core modules over websockets; the chat-server CLI."""
