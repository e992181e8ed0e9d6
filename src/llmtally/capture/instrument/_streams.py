"""Recording streams: count chunks, time the first token, take usage from where the SDK puts it.

A wrapped stream behaves like the SDK's own (iteration, ``with``, ``close()``, every
other attribute forwarded). Its call is finished exactly once, by whichever comes
first: the stream runs out, raises, is closed, its ``with`` block (or the helper
manager's) ends, or it is garbage-collected half read. An abandoned stream is recorded
with what was seen and ``status="success"``; an exception from the stream records
``status="error"`` and propagates unchanged.

Each provider supplies an ``Observer`` that reads one item at a time. When the stream
never carried its final usage, tokens are estimated from the characters sent and seen
and the event is marked ``usage_estimated``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final

from llmtally.capture.instrument._core import (
    Binding,
    Proxy,
    estimate_tokens,
    finish_error,
    finish_ok,
    warn_once,
)
from llmtally.capture.track import Call

CONTENT: Final = 1  # the item carries generated content (the first one sets ttft_ms)
HIDE: Final = 2  # an item llmtally asked for (OpenAI's usage-only chunk): not the caller's


class Observer:
    """Reads one provider's stream items; subclasses implement ``feed``."""

    __slots__ = ("chars", "final", "finish_reason", "model", "n", "tokens")

    def __init__(self) -> None:
        self.n = 0  # items handed to the caller
        self.tokens: dict[str, Any] = {}  # normalized token fields reported so far
        self.final = False  # the usage that closes the stream was seen
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.chars = 0  # generated text seen, for an estimate when no usage comes

    def feed(self, item: Any) -> int:
        """Take one stream item; return CONTENT and/or HIDE flags."""
        raise NotImplementedError

    def fields(self, prompt_chars: Callable[[], int]) -> dict[str, Any]:
        """Event fields for what was seen; tokens estimated when the final usage is missing."""
        fields: dict[str, Any] = dict(self.tokens)
        if not self.final:
            if "input_tokens" not in fields:
                fields["input_tokens"] = estimate_tokens(prompt_chars())
            fields["output_tokens"] = max(
                fields.get("output_tokens") or 0,
                fields.get("reasoning_tokens") or 0,
                estimate_tokens(self.chars),
            )
            fields["usage_estimated"] = True
        if self.model:
            fields["model"] = self.model
        if self.finish_reason:
            fields["finish_reason"] = self.finish_reason
        return fields


class _Recording(Proxy):
    """State shared by the sync and async recording streams."""

    __slots__ = ("_llmtally_call", "_llmtally_done", "_llmtally_obs", "_llmtally_prompt")

    def __init__(
        self,
        target: Any,
        binding: Binding,
        call: Call,
        observer: Observer,
        prompt_chars: Callable[[], int],
    ) -> None:
        super().__init__(target, binding)
        object.__setattr__(self, "_llmtally_call", call)
        object.__setattr__(self, "_llmtally_obs", observer)
        object.__setattr__(self, "_llmtally_prompt", prompt_chars)
        object.__setattr__(self, "_llmtally_done", False)

    def _llmtally_take(self, item: Any) -> bool:
        """Observe one item; False if it is to be kept from the caller."""
        obs = self._llmtally_obs
        try:
            flags = obs.feed(item)
        except Exception:
            warn_once("chunk", "llmtally: could not read a stream chunk")
            flags = 0
        if flags & HIDE:
            return False
        obs.n += 1
        if flags & CONTENT:
            self._llmtally_call.first_token()  # only the first one counts
        return True

    def _llmtally_end(self, exc: BaseException | None = None) -> None:
        """Finish the call once, with what was seen."""
        if self._llmtally_done:
            return
        object.__setattr__(self, "_llmtally_done", True)
        call = self._llmtally_call
        try:
            fields = self._llmtally_obs.fields(self._llmtally_prompt)
            fields["stream_chunks"] = self._llmtally_obs.n
        except Exception:
            warn_once("stream", "llmtally: could not summarize a stream")
            fields = {}
        if exc is None:
            finish_ok(call, fields)
            return
        try:
            call.update(fields)
        except Exception:
            warn_once("usage", "llmtally: could not record a stream's usage")
        finish_error(call, exc)

    def __del__(self) -> None:
        # a stream dropped half read: record what was seen (a queue put, safe here)
        try:
            if not self._llmtally_done:
                self._llmtally_end(None)
        except Exception:
            pass


class SyncStream(_Recording):
    """A recording wrapper around a sync SDK stream or iterator."""

    __slots__ = ("_llmtally_it",)

    def __init__(
        self,
        target: Any,
        binding: Binding,
        call: Call,
        observer: Observer,
        prompt_chars: Callable[[], int],
    ) -> None:
        super().__init__(target, binding, call, observer, prompt_chars)
        object.__setattr__(self, "_llmtally_it", iter(target))

    def __iter__(self) -> SyncStream:
        return self

    def __next__(self) -> Any:
        it = self._llmtally_it
        while True:
            try:
                item = next(it)
            except StopIteration:
                self._llmtally_end(None)
                raise
            except BaseException as exc:
                self._llmtally_end(exc)
                raise
            if self._llmtally_take(item):
                return item

    def __enter__(self) -> SyncStream:
        enter = getattr(self._llmtally_target, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            exit_ = getattr(self._llmtally_target, "__exit__", None)
            if exit_ is not None:
                exit_(exc_type, exc, tb)
            else:
                self._llmtally_close_target()
        finally:
            self._llmtally_end(None)

    def close(self) -> None:
        """Close the underlying stream and record the call."""
        try:
            self._llmtally_close_target()
        finally:
            self._llmtally_end(None)

    def _llmtally_close_target(self) -> None:
        close = getattr(self._llmtally_target, "close", None)
        if close is not None:
            close()


class AsyncStream(_Recording):
    """A recording wrapper around an async SDK stream or async iterator."""

    __slots__ = ("_llmtally_it",)

    def __init__(
        self,
        target: Any,
        binding: Binding,
        call: Call,
        observer: Observer,
        prompt_chars: Callable[[], int],
    ) -> None:
        super().__init__(target, binding, call, observer, prompt_chars)
        object.__setattr__(self, "_llmtally_it", target.__aiter__())

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        it = self._llmtally_it
        while True:
            try:
                item = await it.__anext__()
            except StopAsyncIteration:
                self._llmtally_end(None)
                raise
            except BaseException as exc:
                self._llmtally_end(exc)
                raise
            if self._llmtally_take(item):
                return item

    async def __aenter__(self) -> AsyncStream:
        enter = getattr(self._llmtally_target, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            exit_ = getattr(self._llmtally_target, "__aexit__", None)
            if exit_ is not None:
                await exit_(exc_type, exc, tb)
            else:
                await self._llmtally_close_target("aclose")
        finally:
            self._llmtally_end(None)

    async def close(self) -> None:
        """Close the underlying stream and record the call."""
        try:
            await self._llmtally_close_target("close")
        finally:
            self._llmtally_end(None)

    async def aclose(self) -> None:
        """Close the underlying async generator and record the call."""
        try:
            await self._llmtally_close_target("aclose")
        finally:
            self._llmtally_end(None)

    async def _llmtally_close_target(self, preferred: str) -> None:
        target = self._llmtally_target
        close = getattr(target, preferred, None) or getattr(target, "aclose", None)
        if close is None:
            close = getattr(target, "close", None)
        if close is not None:
            result = close()
            if hasattr(result, "__await__"):
                await result


class StreamHelperShim(Proxy):
    """Stands in as ``self`` for an SDK stream helper (``.stream()``), so that its request
    goes through the recording ``create`` (or ``_post``) and the stream it gets records.

    ``hooks`` maps method names to recording replacements; the streams they return are
    kept so the manager can finish them when its ``with`` block ends.
    """

    __slots__ = ("_llmtally_hooks", "_llmtally_streams")

    def __init__(self, target: Any, binding: Binding, hooks: Mapping[str, Any]) -> None:
        super().__init__(target, binding)
        object.__setattr__(self, "_llmtally_hooks", hooks)
        object.__setattr__(self, "_llmtally_streams", [])

    def __getattr__(self, name: str) -> Any:
        hook = self._llmtally_hooks.get(name)
        if hook is None:
            return getattr(self._llmtally_target, name)
        streams = self._llmtally_streams

        def call(*args: Any, **kwargs: Any) -> Any:
            result = hook(*args, **kwargs)
            if inspect.isawaitable(result):  # an async resource: the helper awaits it later

                async def keep() -> Any:
                    stream = await result
                    streams.append(stream)
                    return stream

                return keep()
            streams.append(result)
            return result

        return call

    def _llmtally_end_all(self) -> None:
        for stream in self._llmtally_streams:
            end = getattr(stream, "_llmtally_end", None)
            if end is not None:
                end(None)


class StreamManager(Proxy):
    """The SDK's stream manager, finishing the recorded stream when its block ends."""

    __slots__ = ("_llmtally_shim",)

    def __init__(self, target: Any, binding: Binding, shim: StreamHelperShim) -> None:
        super().__init__(target, binding)
        object.__setattr__(self, "_llmtally_shim", shim)

    def __enter__(self) -> Any:
        return self._llmtally_target.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return self._llmtally_target.__exit__(exc_type, exc, tb)
        finally:
            self._llmtally_shim._llmtally_end_all()

    async def __aenter__(self) -> Any:
        return await self._llmtally_target.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return await self._llmtally_target.__aexit__(exc_type, exc, tb)
        finally:
            self._llmtally_shim._llmtally_end_all()
