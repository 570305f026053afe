import FedHostCore
import Testing

@Suite struct ModelParameterVectorViewTests {
  @Test func aViewSharesItsStorageAndKeepsItAlive() {
    let view: ParameterVector
    do {
      let storage = ParameterVector((0..<40).map(Float.init))
      view = ParameterVector(viewOf: storage, offset: 16, count: 8)
      #expect(view.array == (16..<24).map(Float.init))
      view[0] = -1
      #expect(storage[16] == -1)
    }
    // The storage's last owner is now the view: its memory must still be readable and writable.
    view[7] = 99
    #expect(view.array == [-1] + (17..<23).map(Float.init) + [99])
    #expect(Int(bitPattern: view.pointer) % 64 == 0)
  }
}
