import FedHostCore
import Testing

@Suite("Pipeline settings: presets, overrides, validation")
struct PipelineSettingsTests {
  @Test func thePaperPresetIsSectionIVD() {
    let paper = PipelineSettings(preset: .paper)
    #expect(paper.learningRate == 1e-5 && paper.batchSize == 1 && !paper.useSGD)
    #expect(paper.serialRounds == 10 && paper.parallelRounds == 10 && paper.personalizationEpochs == 10)
    #expect(paper.freezeFraction == 0.5 && paper.threshold == .f1 && paper.localSteps == nil)
    #expect(paper.phaseFractions == [0.2, 0.5, 0.3])
    #expect(paper.similarityFloor == 0.1 && paper.mu == 0.01)
    #expect(paper.hiddenWidths == [256, 128, 64, 32, 16, 12, 8])
  }

  @Test func specOverridesReplaceOnlyWhatTheyState() {
    var settings = PipelineSettings(preset: .tuned)
    var overrides = TrainingOverrides()
    overrides.phases = [0.2, 0.5, 0.3]
    overrides.learningRate = 0.01
    overrides.threshold = .f1
    settings.apply(overrides)
    #expect(settings.phaseFractions == [0.2, 0.5, 0.3])
    #expect(settings.learningRate == 0.01 && settings.threshold == .f1)
    #expect(settings.batchSize == PipelineSettings(preset: .tuned).batchSize)
  }

  @Test func balancedLocalWorkRoundsUpToWholeEpochs() {
    var settings = PipelineSettings(preset: .tuned)
    settings.localSteps = 240
    settings.batchSize = 16
    #expect(settings.epochsPerRound(sampleCount: 3_840) == 1)  // 240 × 16 = 3,840 samples
    #expect(settings.epochsPerRound(sampleCount: 302) == 13)   // ⌈3,840 / 302⌉
    settings.localSteps = nil
    settings.localEpochs = 3
    #expect(settings.epochsPerRound(sampleCount: 302) == 3)
  }

  @Test(arguments: [
    ([0.5, 0.5], "phase fractions"), ([0.2, 0.5, 0.4], "phase fractions"),
  ])
  func badPhasesAreRejected(_ phases: [Double], _ message: String) {
    var settings = PipelineSettings(preset: .tuned)
    settings.phaseFractions = phases
    #expect(throws: PipelineError.self) { try settings.validate() }
    #expect((try? settings.validate()) == nil)
    do { try settings.validate() } catch { #expect(String(describing: error).contains(message)) }
  }

  @Test func otherBadSettingsNameTheSetting() {
    var settings = PipelineSettings(preset: .paper)
    settings.freezeFraction = 1.5
    do {
      try settings.validate()
      Issue.record("freeze fraction 1.5 was accepted")
    } catch {
      #expect(String(describing: error) == "invalid setting: freeze fraction must be within 0...1")
    }
  }
}
