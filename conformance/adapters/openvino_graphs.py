"""Keras 3 on OpenVINO, compiled once per signature: the path ``model.predict`` takes.

OpenVINO has no eager mode. Called eagerly, a Keras op builds an OpenVINO graph whose
inputs are Constant nodes, and ``convert_to_numpy`` compiles that graph into a model
for every single call (20-40 ms on a 2-core machine), so a compiled model belongs to
one set of input values and can never be reused.

``model.predict`` (keras/src/backend/openvino/trainer.py) instead feeds Parameter
nodes through the same ops, compiles the graph once and runs it for every batch.
This module does the same for one op: Parameters of the example's shapes and dtypes,
the op called on them, one compiled model per signature (op, shapes, dtypes, static
arguments), run for every example of that signature (0.2-0.9 ms). It is the analogue
of ``K.function`` in the Keras 2 adapter.

The two paths are not numerically identical: with Constant inputs OpenVINO folds the
whole graph at compile time with its reference implementations, with Parameters its
CPU plugin kernels run. The target ``keras3-openvino-eager`` keeps the eager path.

An op that cannot be built over Parameters (it needs the input values in Python) is
run eagerly instead, and that choice is remembered for its signature.
"""
import collections
import time

import numpy as np

from conformance import adapters

EAGER = object()  # cache entry: this signature does not compile, it runs eagerly
# Ops whose compiled models are kept (the most recently called): a run asks for a few
# ops at a time (a case, the cases queued behind it, a shrink step between them), and
# the memory of one op's models stays bounded.
KEPT_OPS = 4


def _describe(value):
    """A hashable description of a call's arguments: arrays by shape and dtype."""
    if isinstance(value, np.ndarray):
        return ("array", value.shape, str(value.dtype))
    if isinstance(value, dict):
        return tuple((k, _describe(value[k])) for k in sorted(value))
    if isinstance(value, (list, tuple)):
        return tuple(_describe(v) for v in value)
    return repr(value)


class CompiledCalls(object):
    """Compiled OpenVINO models of the last KEPT_OPS ops, keyed by signature."""

    def __init__(self):
        import openvino
        from keras.src.backend.openvino import core  # what Keras's own calls use
        self.core = core
        self.openvino = openvino
        self.models = collections.OrderedDict()  # op name -> {signature: model}

    def clear(self):
        self.models = collections.OrderedDict()

    def call(self, fn, fn_name, args, kwargs, eager):
        """Outputs as numpy arrays and the seconds spent compiling (0 when cached).

        `eager()` runs the call the eager way, for a signature that does not compile
        (remembered, so the failed compile is paid once).
        """
        models = self._models_of(fn_name)
        key = (_describe(args), _describe(kwargs))
        compile_s = 0.0
        entry = models.get(key)
        if entry is None:
            started = time.perf_counter()
            try:
                entry = self._compile(fn, args, kwargs)
            except Exception:
                entry = EAGER
            compile_s = time.perf_counter() - started
            models[key] = entry
        if entry is EAGER:
            return eager(), compile_s
        return self._run(entry, adapters.leaf_arrays(args)), compile_s

    def _models_of(self, fn_name):
        """The op's models, now the most recently used; the oldest op's are dropped."""
        models = self.models.pop(fn_name, None)
        self.models[fn_name] = models if models is not None else {}
        while len(self.models) > KEPT_OPS:
            self.models.popitem(last=False)
        return self.models[fn_name]

    def _compile(self, fn, args, kwargs):
        core, ov = self.core, self.openvino
        parameters = []

        def to_parameter(array):
            # static shapes: Parameters with dynamic dims make OpenVINO pick other
            # kernels (tie order in argsort/top_k changed), for a 15% gain at most
            node = core.ov_opset.parameter(list(array.shape), core.OPENVINO_DTYPES[str(array.dtype)])
            parameters.append(node)
            return core.OpenVINOKerasTensor(node.output(0))

        symbolic = adapters.map_structure(to_parameter, args)
        leaves = adapters.flatten(fn(*symbolic, **kwargs))
        results, plan = [], []
        for leaf in leaves:
            if not isinstance(leaf, core.OpenVINOKerasTensor):
                plan.append(("value", np.asarray(core.convert_to_numpy(leaf))))
                continue
            output = leaf.output
            # as convert_to_numpy does: boolean results leave the model as int32
            is_bool = output.get_element_type() == core.Type.boolean
            if is_bool:
                output = core.ov_opset.convert(output, core.Type.i32).output(0)
            plan.append(("result", len(results), is_bool))
            results.append(core.ov_opset.result(output))
        model = ov.Model(results=results, parameters=parameters)
        # the same device and precision hint as convert_to_numpy's per-call compile
        compiled = core.compile_model(model, core.get_device(),
                                      config={"INFERENCE_PRECISION_HINT": "f32"})
        return compiled, plan

    def _run(self, entry, arrays):
        compiled, plan = entry
        answer = compiled(arrays) if any(p[0] == "result" for p in plan) else None
        outputs = []
        for step in plan:
            if step[0] == "value":
                outputs.append(step[1])
                continue
            data = np.array(answer[step[1]])
            outputs.append(data.astype(bool) if step[2] else data)
        return outputs
