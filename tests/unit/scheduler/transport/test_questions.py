import gevent
from gevent.queue import Queue

from ollama_proxy.scheduler.transport import wire
from ollama_proxy.scheduler.transport.questions import Reply, ask_status


class QuestionLine:
    """A line to a fake arbiter that answers a status question with ``answers`` (read from its socket)."""

    def __init__(self, answers) -> None:
        self.answers, self.sent, self.closed, self._inbox = answers, [], False, Queue()

    def send(self, message: dict) -> None:
        self.sent.append(message)
        for answer in self.answers(message):
            self._inbox.put(answer)

    def messages(self):
        while True:
            yield self._inbox.get()

    def close(self) -> None:
        self.closed = True


def test_the_arbiters_state_is_its_answer_to_this_question_and_the_line_is_closed_after():
    line = QuestionLine(lambda asked: [wire.status("another question", {"waiting": 9}),
                                       wire.status(asked["id"], {"waiting": 0})])
    assert ask_status(lambda receive: line, timeout=1) == {"waiting": 0}
    assert [message["op"] for message in line.sent] == ["status"] and line.closed


def test_an_arbiter_that_does_not_answer_in_time_gives_none_and_its_line_is_closed():
    line = QuestionLine(lambda asked: [])
    assert ask_status(lambda receive: line, timeout=0.05) is None
    assert line.closed


def test_while_a_new_arbiter_takes_office_the_question_is_asked_again_until_one_answers():
    line, tries = QuestionLine(lambda asked: [wire.status(asked["id"], {"waiting": 2})]), []

    def ask(receive):
        tries.append(receive)
        if len(tries) < 3:
            raise ConnectionRefusedError("no arbiter yet")
        return line
    assert ask_status(ask, timeout=1) == {"waiting": 2}
    assert len(tries) == 3


def test_a_reply_waited_for_is_the_message_set_from_another_greenlet_or_none_when_time_runs_out():
    reply = Reply()
    assert reply.wait(0.01) is None and not reply.ready()
    gevent.spawn_later(0.01, reply.set, {"op": "grant"})
    assert reply.wait(1) == {"op": "grant"} and reply.ready()
