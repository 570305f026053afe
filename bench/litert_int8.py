"""LiteRT's single-sample latency on an int8 .tflite file, timed the way the reference
tflite_int8.py times it (set_tensor + invoke + get_tensor per sample, 1 thread, default resolver).

usage: litert_int8.py MODEL.tflite INPUTS.bin CALLS PASSES
INPUTS.bin holds int8 rows as wide as the model's input; they are repeated to CALLS rows. After
one warm-up pass, each of PASSES passes makes CALLS calls. Writes out/litert_int8.json (in the
working directory): median and minimum over the passes of µs per call, for set+invoke+get and for
invoke() alone.
"""
import json
import os
import statistics
import sys
import time

import numpy as np
import ai_edge_litert
from ai_edge_litert.interpreter import Interpreter


def microseconds_per_call(body, calls, passes):
    body()  # warm-up
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        body()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return {"median_us": statistics.median(times), "min_us": min(times)}


def main():
    model_path, inputs_path, calls, passes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    interpreter = Interpreter(model_path=model_path, num_threads=1)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    if source["dtype"] != np.int8:
        sys.exit(f"{model_path}: input is {source['dtype'].__name__}, not int8")
    width = int(source["shape"][-1])
    rows = np.fromfile(inputs_path, dtype=np.int8).reshape(-1, width)
    inputs = np.resize(rows, (calls, width))
    source_index, target_index = source["index"], target["index"]

    def set_invoke_get():
        for i in range(calls):
            interpreter.set_tensor(source_index, inputs[i:i + 1])
            interpreter.invoke()
            interpreter.get_tensor(target_index)

    def invoke_only():
        for _ in range(calls):
            interpreter.invoke()

    record = {
        "ai_edge_litert": getattr(ai_edge_litert, "__version__", "?"),
        "set_invoke_get": microseconds_per_call(set_invoke_get, calls, passes),
        "invoke_only": microseconds_per_call(invoke_only, calls, passes),
    }
    os.makedirs("out", exist_ok=True)
    with open("out/litert_int8.json", "w") as file:
        json.dump(record, file)


if __name__ == "__main__":
    main()
