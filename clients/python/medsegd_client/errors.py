"""What the client raises: the server's JSON errors, and bodies cut after their head."""


class MedsegdError(Exception):
    """An error answer from medsegd, with the contract's code (`not_found`, `bad_request`, ...)."""

    def __init__(self, status, code, message):
        super().__init__("%s (%d): %s" % (code, status, message))
        self.status = status
        self.code = code
        self.message = message


class TruncatedResponseError(MedsegdError, ConnectionError):
    """The server sent a response head (status and headers) and then closed the connection before
    the whole body: fewer bytes than its Content-Length, or a chunked body without its last chunk.

    medsegd does this only when it cannot finish a body it has started to stream (large bodies:
    API.md says which): two classes overlapping in a `mask_format=labels` mask found after the
    first bytes were sent, a file that changed or failed to read during the read, or a client that
    took no bytes of it for the server's `idle_timeout`; the server's access log line for the
    request says `body=aborted`. The request is not sent again: the same request would most likely
    be cut again, after the same download. A MedsegdError (code `truncated_response`, `status` the
    head's) and a ConnectionError (what a cut body raised before), so code that catches either
    still catches it. Also: `path` (the request's path and query), `received` (bytes of the body
    received: exact when the connection was closed, at least that many (`exact` False) after a
    reset or a timeout, None when unknown), `expected` (the Content-Length, None for a chunked
    body)."""

    code_name = "truncated_response"

    def __init__(self, status, path, received, expected, reason=None, exact=True):
        if received is None:
            got = "an unknown number of"
        else:
            got = ("%d" if exact else "at least %d") % received
        if expected is None:
            what = "its chunked body broke off before its last chunk, after %s bytes" % got
        else:
            what = "its body broke off after %s of the %d bytes its Content-Length announced" % (got, expected)
        message = ("%s: medsegd sent a %d head, then %s%s. It cuts a response it cannot "
                   "finish (an overlap of two classes found late in a streamed mask_format=labels mask, a file "
                   "changed or unreadable during the read, or this client taking no bytes for the server's "
                   "idle_timeout); see the server's log for this request (its access log line says body=aborted). "
                   "Not retried." % (path, status, what, "" if reason is None else " (%s)" % reason))
        MedsegdError.__init__(self, status, self.code_name, message)
        self.path = path
        self.received = received
        self.expected = expected
        self.reason = reason
        self.exact = exact

    def __reduce__(self):  # picklable (from a worker process) with its attributes
        return type(self), (self.status, self.path, self.received, self.expected, self.reason, self.exact)
