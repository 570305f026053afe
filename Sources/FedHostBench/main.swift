import FedHostCore
import Foundation

// FedHostBench: speed measurements of FedHost beside peers measured in the same invocation.
// Usage: FedHostBench [training] [batched] [aggregation] [export] [scale] [end-to-end] [isolation] [flower] [--quick] [--out DIR] [--plugins DIR]
// (bench/run builds in release mode and calls this.)

func benchmarkMain() -> Int32 {
  var arguments = Array(CommandLine.arguments.dropFirst())
  func option(_ name: String) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    defer { arguments.removeSubrange(index...(index + 1)) }
    return arguments[index + 1]
  }
  if ["scale-one", "scale-sampled"].contains(arguments.first), arguments.count == 2, let clients = Int(arguments[1]) {
    do {
      if arguments[0] == "scale-one" { try ScaleBenchmark.runOne(clients: clients) } else { try ScaleBenchmark.runSampledOne(clients: clients) }
    } catch {
      FileHandle.standardError.write(Data("FedHostBench: \(error)\n".utf8))
      return 1
    }
    return 0
  }
  let quick = arguments.contains("--quick")
  arguments.removeAll { $0 == "--quick" }
  let outDirectory = option("--out")
  let pluginDirectory = option("--plugins") ?? currentExecutableDirectory() ?? "."
  let known = ["training", "batched", "aggregation", "export", "scale", "end-to-end", "isolation", "flower"]
  if let unknown = arguments.first(where: { !known.contains($0) }) {
    FileHandle.standardError.write(Data("FedHostBench: unknown argument \(unknown); suites: \(known)\n".utf8))
    return 2
  }
  let suites = arguments.isEmpty ? known : arguments
  var rows: [BenchmarkRow] = []
  do {
    for suite in suites {
      FileHandle.standardError.write(Data("== \(suite)\n".utf8))
      switch suite {
      case "training": rows += try TrainingBenchmark.run(quick: quick)
      case "batched": rows += try BatchedTrainingBenchmark.run(quick: quick)
      case "export": rows += try ExportBenchmark.run(quick: quick)
      case "scale": rows += try ScaleBenchmark.run(quick: quick) + ScaleBenchmark.runSampled(quick: quick)
      case "end-to-end": rows += try EndToEndBenchmark.run(quick: quick)
      case "flower": rows += try FlowerStudyBenchmark.run(quick: quick)
      case "isolation": rows += try IsolationBenchmark.run(quick: quick, pluginDirectory: pluginDirectory)
      default: rows += try AggregationBenchmark.run(quick: quick, pluginDirectory: pluginDirectory)
      }
    }
  } catch {
    FileHandle.standardError.write(Data("FedHostBench: \(error)\n".utf8))
    return 1
  }
  let markdown = BenchmarkReport.markdown(rows, machine: BenchmarkReport.machineDescription())
  print(markdown, terminator: "")
  if let outDirectory {
    do {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      try AtomicFile.write(markdown, to: outDirectory + "/RESULTS.md")
      try AtomicFile.write(try encoder.encode(rows), to: outDirectory + "/results.json")
    } catch {
      FileHandle.standardError.write(Data("FedHostBench: \(error)\n".utf8))
      return 1
    }
  }
  return 0
}

exit(benchmarkMain())
