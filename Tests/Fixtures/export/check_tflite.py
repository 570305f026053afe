"""Runs an exported int8 .tflite model in real TFLite interpreters and writes their outputs.

usage: check_tflite.py MODEL.tflite INPUTS.bin OUTPUT.json

INPUTS.bin holds int8 rows, each as wide as the model's input. OUTPUT.json gets, per runtime, the
int8 outputs row by row (or null and a reason when that runtime is not installed):
  litert-reference  LiteRT with its reference kernels (BUILTIN_REF)
  litert-builtin    LiteRT's optimized kernels without delegates
  litert-default    LiteRT as applications run it (XNNPACK delegate applied)
  tflm              TFLite Micro's Python interpreter (pip package tflite-micro), when installed
plus the input/output quantization LiteRT reads from the file. TFLite Micro prints its arena
allocations on stdout. Exit status 3 when ai_edge_litert cannot be imported.
"""
import json
import sys

try:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
except ImportError as error:
    print(f"ai_edge_litert is not importable ({error}); install it with: pip install ai-edge-litert numpy",
          file=sys.stderr)
    sys.exit(3)


def run_litert(model, rows, resolver):
    interpreter = Interpreter(model_content=model, experimental_op_resolver_type=resolver, num_threads=1)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    outputs = []
    for row in rows:
        interpreter.set_tensor(source["index"], row.reshape(source["shape"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target["index"]).reshape(-1).tolist())
    return outputs, source, target


def run_tflm(model, rows):
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as error:
        return None, f"tflite_micro is not importable ({error}); pip install tflite-micro"
    interpreter = runtime.Interpreter.from_bytes(model)
    shape = interpreter.get_input_details(0)["shape"]
    outputs = []
    for row in rows:
        interpreter.set_input(row.reshape(shape), 0)
        interpreter.invoke()
        outputs.append(interpreter.get_output(0).reshape(-1).tolist())
    sys.stdout.flush()
    interpreter.print_allocations()
    return outputs, None


def main():
    model_path, inputs_path, output_path = sys.argv[1:4]
    model = open(model_path, "rb").read()
    probe = Interpreter(model_content=model)
    width = int(probe.get_input_details()[0]["shape"][-1])
    rows = np.fromfile(inputs_path, dtype=np.int8).reshape(-1, width)
    report = {}
    for name, resolver in [("litert-reference", OpResolverType.BUILTIN_REF),
                           ("litert-builtin", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
                           ("litert-default", OpResolverType.AUTO)]:
        outputs, source, target = run_litert(model, rows, resolver)
        report[name] = outputs
    report["input_quantization"] = [float(source["quantization"][0]), int(source["quantization"][1])]
    report["output_quantization"] = [float(target["quantization"][0]), int(target["quantization"][1])]
    report["tflm"], reason = run_tflm(model, rows)
    if reason:
        report["tflm_missing"] = reason
    with open(output_path, "w") as handle:
        json.dump(report, handle)


if __name__ == "__main__":
    main()
