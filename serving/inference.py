"""Classify, Regress and MultiInference: tf.Example requests in, TF Serving's results and errors out
(classifier.cc, regressor.cc, multi_inference.cc and util.cc of tensorflow_serving/servables/
tensorflow). Independent of the transport: gRPC and REST call the same functions.

The examples go to the signature's `inputs` tensor as a vector of serialized tf.Examples; with a
context, its serialization is prefixed to each example's, which protobuf parses as a merge (the
example's own features win), as TF Serving does.
"""

from __future__ import annotations

import grpc
import numpy as np
from google.protobuf import text_format

from serving.protos import classification_pb2, inference_pb2, regression_pb2
from serving.rpc import RpcFailure, invalid

CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
INPUTS = "inputs"  # the input alias of both kinds of signature
CLASSES, SCORES = "classes", "scores"
OUTPUTS = "outputs"  # the regression output alias
DEFAULT_SIGNATURE = "serving_default"


def classify(servable, request) -> classification_pb2.ClassificationResponse:
    """Answer a ClassificationRequest: per example, (label, score) per class.

    Raises:
        RpcFailure: TF Serving's code and message for a wrong signature, empty input or
            outputs of the wrong shape or type.
    """
    name, signature = _signature(servable, request.model_spec, CLASSIFY)
    fetch = _classify_outputs(signature)
    examples = serialized_examples(request.input)
    outputs = servable.runner.run(name, {INPUTS: examples}, fetch)
    response = classification_pb2.ClassificationResponse()
    _model_spec(response.model_spec, request.model_spec, servable)
    _fill_classifications(response.result, outputs, len(examples))
    return response


def regress(servable, request) -> regression_pb2.RegressionResponse:
    """Answer a RegressionRequest: one float per example.

    Raises:
        RpcFailure: as `classify`.
    """
    name, signature = _signature(servable, request.model_spec, REGRESS)
    _regress_outputs(signature)
    examples = serialized_examples(request.input)
    outputs = servable.runner.run(name, {INPUTS: examples}, [OUTPUTS])
    response = regression_pb2.RegressionResponse()
    _model_spec(response.model_spec, request.model_spec, servable)
    _fill_regressions(response.result, outputs[OUTPUTS], len(examples))
    return response


def multi_inference(servable, request) -> inference_pb2.MultiInferenceResponse:
    """Answer a MultiInferenceRequest: several classify/regress signatures of one model, all fed
    the same examples, in one reply.

    Raises:
        RpcFailure: TF Serving's code and message (mixed models, duplicate or unknown signatures,
            different input tensors, unsupported method names, and those of classify/regress).
    """
    tasks = []
    model_name = input_tensor = None
    for task in request.tasks:
        if not task.model_spec.name:
            raise invalid("Found ModelSpec with an empty model name.")
        if model_name is None:
            model_name = task.model_spec.name
        elif task.model_spec.name != model_name:
            raise invalid("All ModelSpecs in a MultiInferenceRequest must access the same "
                          "model name.")
        name = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if name in (t[0] for t in tasks):
            raise invalid(f"Duplicate evaluation of signature: {name}")
        signature = servable.signature_defs.get(name)
        if signature is None or not servable.runner.has_signature(name):
            raise invalid(f"Requested signature not found in model graph: {name}")
        check = servable.options.method_name_check  # as PreProcessClassification/Regression
        if task.method_name == CLASSIFY:
            fetch = _classify_outputs(signature, check_method=check)
        elif task.method_name == REGRESS:
            fetch = _regress_outputs(signature, check_method=check)
        else:
            raise RpcFailure(grpc.StatusCode.UNIMPLEMENTED, "Unsupported signature method_name: "
                             f"{task.method_name}")
        if input_tensor is None:
            input_tensor = signature.inputs[INPUTS].name
        elif signature.inputs[INPUTS].name != input_tensor:
            raise invalid("Input tensor must be the same for all Signatures.")
        tasks.append((name, task, fetch))
    examples = serialized_examples(request.input)
    response = inference_pb2.MultiInferenceResponse()
    for name, task, fetch in tasks:
        outputs = servable.runner.run(name, {INPUTS: examples}, fetch)
        result = response.results.add()
        if task.method_name == CLASSIFY:
            _fill_classifications(result.classification_result, outputs, len(examples))
        else:
            _fill_regressions(result.regression_result, outputs[OUTPUTS], len(examples))
        _model_spec(result.model_spec, task.model_spec, servable)
    return response


def serialized_examples(model_input) -> np.ndarray:
    """The request's examples as a string vector, the context (if any) merged into each.

    Raises:
        RpcFailure: INVALID_ARGUMENT "Input is empty." when there is no example.
    """
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        examples = [e.SerializeToString() for e in model_input.example_list.examples]
    elif kind == "example_list_with_context":
        listed = model_input.example_list_with_context
        context = listed.context.SerializeToString()
        examples = [context + e.SerializeToString() for e in listed.examples]
    else:
        examples = []
    if not examples:
        raise invalid("Input is empty.")
    return np.array(examples, dtype=object)


# Handlers for warm-up replay: a servable's request function of one argument.
def classify_handler(servable):
    return lambda request: classify(servable, request)


def regress_handler(servable):
    return lambda request: regress(servable, request)


def multi_inference_handler(servable):
    return lambda request: multi_inference(servable, request)


def _signature(servable, model_spec, method: str):
    """The named signature, checked as GetClassificationSignatureDef/GetRegressionSignatureDef."""
    name = model_spec.signature_name or DEFAULT_SIGNATURE
    signature = servable.signature_defs.get(name)
    if signature is None or not servable.runner.has_signature(name):
        raise invalid(f"No signature was found with the name: {name}")
    check = servable.options.method_name_check
    if method == CLASSIFY:
        _classify_outputs(signature, check_method=check)
    else:
        _regress_outputs(signature, check_method=check)
    return name, signature


def _check_method(signature, method: str, what: str) -> None:
    if signature.method_name != method:
        raise invalid(f"Expected {what} signature method_name to be {method}. "
                      f"Was: {signature.method_name}")


def _classify_outputs(signature, *, check_method: bool = False) -> list[str]:
    """PreProcessClassification: the output aliases to fetch (classes and/or scores)."""
    if check_method:
        _check_method(signature, CLASSIFY, "classification")
    if len(signature.inputs) != 1:
        raise invalid("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise invalid(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if INPUTS not in signature.inputs:
        raise invalid(f"No classification inputs found in SignatureDef: {_debug(signature)}")
    fetch = [alias for alias in (CLASSES, SCORES) if alias in signature.outputs]
    if not fetch:
        raise invalid("Expected classification signature outputs to contain at least one of "
                      f'"{CLASSES}" or "{SCORES}". Signature was: {_debug(signature)}')
    return fetch


def _regress_outputs(signature, *, check_method: bool = False) -> list[str]:
    """PreProcessRegression: the one output alias to fetch."""
    if check_method:
        _check_method(signature, REGRESS, "regression")
    if len(signature.inputs) != 1:
        raise invalid("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise invalid("Expected one output Tensor.")
    if INPUTS not in signature.inputs:
        raise invalid(f"No regression inputs found in SignatureDef: {_debug(signature)}")
    if OUTPUTS not in signature.outputs:
        raise invalid(f"No regression outputs found in SignatureDef: {_debug(signature)}")
    return [OUTPUTS]


def _fill_classifications(result, outputs: dict, count: int) -> None:
    """PostProcessClassificationResult: check the tensors, then one Class per (example, class)."""
    classes = outputs.get(CLASSES)
    scores = outputs.get(SCORES)
    for alias, tensor, dtype in ((CLASSES, classes, "DT_STRING"), (SCORES, scores, "DT_FLOAT")):
        if tensor is None:
            continue
        if tensor.ndim != 2:
            raise invalid(f"Expected Tensor shape: [batch_size num_classes] but got "
                          f"{_shape(tensor)}")
        if _dtype_name(tensor) != dtype:
            raise invalid(f"Expected {alias} Tensor of {dtype}. Got: {_dtype_name(tensor)}")
        if tensor.shape[0] != count:
            raise invalid(f"Expected {alias} output batch size of {count}. Got: {tensor.shape[0]}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid(f"Tensors class and score should match in dim_size(1). Got "
                      f"{classes.shape[1]} vs. {scores.shape[1]}")
    width = (classes if classes is not None else scores).shape[1]
    for row in range(count):
        entry = result.classifications.add()
        for column in range(width):
            cls = entry.classes.add()
            if classes is not None:
                cls.label = _text(classes[row, column])
            if scores is not None:
                cls.score = float(scores[row, column])


def _fill_regressions(result, tensor: np.ndarray, count: int) -> None:
    """PostProcessRegressionResult: a [batch] or [batch, 1] float tensor, one value per example."""
    if not (tensor.ndim == 1 or (tensor.ndim == 2 and tensor.shape[1] == 1)):
        raise invalid("Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
                      f"but got {_shape(tensor)}")
    if tensor.shape[0] != count:
        raise invalid(f"Input batch size did not match output batch size: {count} vs. "
                      f"{tensor.shape[0]}")
    if tensor.dtype != np.float32:
        raise invalid(f"Expected output Tensor of DT_FLOAT.  Got: {_dtype_name(tensor)}")
    for value in tensor.reshape(-1):
        result.regressions.add(value=float(value))


def _model_spec(out, requested, servable) -> None:
    """MakeModelSpec: the requested name and signature (defaulted), the served version."""
    out.name = requested.name
    out.signature_name = requested.signature_name or DEFAULT_SIGNATURE
    out.version.value = servable.version


def _debug(signature) -> str:
    # The C++ DebugString of the SignatureDef: the same text format, field for field.
    return text_format.MessageToString(signature)


def _shape(tensor: np.ndarray) -> str:
    return "[" + ",".join(str(d) for d in tensor.shape) + "]"


def _dtype_name(tensor: np.ndarray) -> str:
    from serving import tensors

    try:
        return "DT_" + tensors.dtype_name(tensors.dtype_from_numpy(tensor.dtype)).upper()
    except Exception:  # noqa: BLE001 -- a dtype with no TensorFlow name is named as numpy's
        return str(tensor.dtype)


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

