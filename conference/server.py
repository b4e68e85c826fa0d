"""
daphne as this site runs it:

    python -m conference.server [daphne's options] conference.asgi:application

It takes daphne's options and behaves as the `daphne` command does, but for one thing: a websocket
that breaks the transport's rules is closed with a close frame, 1009 for a message over
--websocket-max-message-size or a frame over --websocket-max-frame-size (1 MiB each by default),
1007 for a text frame that is not UTF-8. daphne leaves autobahn's `failByDrop` on, which drops the
TCP connection instead: the client sees 1006, which it cannot tell from a network failure.
"""

# daphne.server installs Twisted's asyncio reactor, so it must come before twisted.internet.reactor.
import daphne.cli
import daphne.server
from twisted.internet import reactor


class Server(daphne.server.Server):
    """daphne's server, with websockets that break the transport's rules closed by a close frame."""

    def run(self):
        # Server.run() makes the websocket factory, then runs the reactor until shutdown. The
        # reactor calls this back as it starts, before it accepts any connection.
        reactor.callWhenRunning(self.fail_websockets_with_a_close_frame)
        super().run()

    def fail_websockets_with_a_close_frame(self):
        self.ws_factory.setProtocolOptions(failByDrop=False)


class CommandLineInterface(daphne.cli.CommandLineInterface):
    description = "The site's HTTP and websocket server: daphne, closing broken websockets cleanly"
    server_class = Server

    def __init__(self):
        super().__init__()
        self.parser.prog = "python -m conference.server"


if __name__ == "__main__":
    CommandLineInterface.entrypoint()
