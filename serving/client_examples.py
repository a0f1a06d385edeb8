"""Classify and Regress for `serving.grpc_client.PredictClient`: tf.Examples given as dicts,
answers in TF Serving's REST shape. A mixin, so the Predict client stays one class and one
connection."""

from __future__ import annotations

from dataclasses import dataclass

from serving import tf_examples
from serving.client_messages import DEFAULT_SIGNATURE, fill_model_spec


@dataclass
class ExampleResults:
    """A Classify or Regress answer, in TF Serving's REST shape.

    Attributes:
        results: Classify: per example, [label, score] per class; Regress: one float per example.
        model, version, signature: who answered (the signature defaults to serving_default).
    """

    results: list
    model: str
    version: int | None
    signature: str


class ExampleMethods:
    """Classify and Regress over the connection of a PredictClient (which provides `_call`,
    `_classify` and `_regress`)."""

    def classify(self, model: str, examples: list[dict], *, context: dict | None = None,
                 signature: str | None = None, version: int | None = None,
                 label: str | None = None) -> ExampleResults:
        """Classify tf.Examples given as dicts ({feature: value(s)}, TF Serving's REST rules; see
        `serving.tf_examples`).

        Returns:
            ExampleResults whose `results` hold, per example, [label, score] per class.

        Raises:
            BadInputError: examples that cannot be made tf.Examples (exit 2).
            ServingError: any gRPC failure, e.g. a signature that cannot classify (exit 4).
        """
        return self._examples_call("Classify", model, examples, context, signature, version,
                                   label)

    def regress(self, model: str, examples: list[dict], *, context: dict | None = None,
                signature: str | None = None, version: int | None = None,
                label: str | None = None) -> ExampleResults:
        """Regress tf.Examples given as dicts; `results` holds one float per example.

        Raises:
            BadInputError, ServingError: as `classify`.
        """
        return self._examples_call("Regress", model, examples, context, signature, version,
                                   label)

    def _examples_call(self, kind, model, examples, context, signature, version,
                       label) -> ExampleResults:
        request = tf_examples.REQUESTS[kind]()
        fill_model_spec(request.model_spec, model, signature, version, label)
        tf_examples.fill_input(request.input, examples, context)
        method = self._classify if kind == "Classify" else self._regress
        response = self._call(method, request, f"{kind} on model '{model}'")
        spec = response.model_spec
        return ExampleResults(tf_examples.results_json(kind, response.result), model,
                              spec.version.value if spec.HasField("version") else None,
                              spec.signature_name or signature or DEFAULT_SIGNATURE)
