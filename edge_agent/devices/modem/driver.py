"""A GSM/LTE modem on a serial port that sends text messages when asked (``gsm-modem``).

It reads nothing: ``send(number, text, token)`` queues a text (bounded; False when full),
the sensor's thread opens the port, runs one ``protocols.at_modem.SmsSession`` per text with
``answer_timeout`` per command, closes the port, and hands ``(token, SmsSent | SmsFailed)``
to ``results()``. Retrying is the caller's decision (welfare.escalation). Failures are
also counted in the sensor's stats by reason (``cms``, ``no_network``, ``timeout``, ...).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Hashable

from edge_agent.core.errors import HardwareError, ProtocolError
from edge_agent.devices.base import Emit, Sensor, SensorContext, SensorSpec, error_reason
from edge_agent.devices.modem.options import ModemOptions
from edge_agent.protocols.at_modem import NEED_DATA, SmsFailed, SmsSent, SmsSession

Result = tuple[Hashable, SmsSent | SmsFailed]


class ModemSensor(Sensor):
    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: ModemOptions) -> None:
        super().__init__(spec, ctx)
        self.options = options
        self._jobs: queue.Queue[tuple[Hashable, SmsSession]] = queue.Queue(options.queue)
        self._results: queue.Queue[Result] = queue.Queue(options.queue * 2)
        self.sent = 0
        self.failed = 0

    def send(self, number: str, text: str, token: Hashable) -> bool:
        """Queue one text (checked now: SmsTextError if it cannot be sent). False if full."""
        session = SmsSession(number, text)
        try:
            self._jobs.put_nowait((token, session))
        except queue.Full:
            return False
        return True

    def results(self) -> list[Result]:
        out: list[Result] = []
        while True:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                return out

    def run(self, emit: Emit, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                token, session = self._jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            outcome = self._attempt(session, stop)
            if isinstance(outcome, SmsFailed) and outcome.reason == "stopped" \
                    and outcome.step in ("text", "done"):
                # stopped after the text went to the modem: it may have been sent, so this is
                # neither a delivery nor a failure to retry (a retry could text twice)
                self.log.warning("stopped while the modem was sending a text; its outcome "
                                 "is unknown and it is not retried")
                continue
            if isinstance(outcome, SmsSent):
                self.sent += 1
                self.record_success()
            else:
                self.failed += 1
                self.record_error(outcome.reason, HardwareError(0, f"SMS {outcome.detail}"))
            try:
                self._results.put_nowait((token, outcome))
            except queue.Full:  # nobody reads results: keep the newest
                self._results.get_nowait()
                self._results.put_nowait((token, outcome))

    def _attempt(self, session: SmsSession, stop: threading.Event) -> SmsSent | SmsFailed:
        o = self.options
        try:
            port = self.ctx.hw.serial(o.port, o.baudrate, framing=o.framing, timeout=0.1)
        except (HardwareError, OSError) as exc:
            return SmsFailed(error_reason(exc), None, "open")
        clock = self.ctx.clock
        try:
            port.reset_input_buffer()
            deadline = clock.monotonic() + o.answer_timeout
            while not stop.is_set():
                out = session.data_to_send()
                if out:
                    port.write(out)
                    deadline = clock.monotonic() + o.answer_timeout
                event = session.next_event()
                if event is not NEED_DATA:
                    assert isinstance(event, SmsSent | SmsFailed)
                    return event
                data = port.read(256)
                if data:
                    session.receive_data(data)
                elif clock.monotonic() >= deadline:
                    session.timeout()
            return SmsFailed("stopped", None, session.step)
        except ProtocolError as exc:
            return SmsFailed(exc.reason, None, session.step)
        except (HardwareError, OSError) as exc:
            return SmsFailed(error_reason(exc), None, session.step)
        finally:
            with contextlib.suppress(OSError):
                port.close()


def build(spec: SensorSpec, options: ModemOptions, ctx: SensorContext) -> Sensor:
    return ModemSensor(spec, ctx, options)
