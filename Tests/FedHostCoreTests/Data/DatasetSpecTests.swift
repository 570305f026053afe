import FedHostCore
import Testing

@Suite("Data: dataset description")
struct DataDatasetSpecTests {
  private func table(_ text: String) throws -> CSVTable {
    try CSVTable(bytes: Array(text.utf8), fileName: "t.csv")
  }

  @Test func oneHotsCategoriesInSortedOrderAndPads() throws {
    let data = try DatasetSpec(label: .column("y"), drop: ["id"], categorical: ["Type"], padTo: 6)
      .makeDataset(from: table("id,Type,x,y\n1,M,2.5,0\n2,L,3.5,1\n3,H,4.5,0\n"))
    #expect(data.featureNames == ["Type=H", "Type=L", "Type=M", "x", "pad1", "pad2"])
    #expect(data.samples.features == [0, 0, 1, 2.5, 0, 0, 0, 1, 0, 3.5, 0, 0, 1, 0, 0, 4.5, 0, 0])
    #expect(data.samples.labels == [0, 1, 0])
    #expect(data.classNames == ["0", "1"])
    #expect(data.paddingWidth == 2)
  }

  @Test func labelBitsBecomeSortedClassPatterns() throws {
    let text = "G,C,B,A,x\n1,0,0,1,1\n0,0,0,0,2\n0,1,1,0,3\n1,0,0,1,4\n"
    let multi = try DatasetSpec(label: .bits(["G", "C", "B", "A"])).makeDataset(from: table(text))
    #expect(multi.task == .multiclass)
    #expect(multi.classNames == ["0000", "0110", "1001"])
    #expect(multi.samples.labels == [2, 0, 1, 2])
    #expect(multi.featureNames == ["x"])
    let binary = try DatasetSpec(label: .bits(["G", "C", "B", "A"]), task: .binary).makeDataset(from: table(text))
    #expect(binary.classNames == ["none", "any"])
    #expect(binary.samples.labels == [1, 0, 1, 1])
  }

  @Test func multiclassColumnOrdersNumbersThenText() throws {
    let data = try DatasetSpec(label: .column("y"), task: .multiclass)
      .makeDataset(from: table("x,y\n1,10\n2,2\n3,2.0\n4,LG\n5,LL\n"))
    #expect(data.classNames == ["2", "10", "LG", "LL"])
    #expect(data.samples.labels == [1, 0, 0, 2, 3])
  }

  @Test func explicitFeaturesKeepTheirOrder() throws {
    let data = try DatasetSpec(label: .column("y"), features: ["b", "a"]).makeDataset(from: table("a,b,c,y\n1,2,3,0\n"))
    #expect(data.featureNames == ["b", "a"])
    #expect(data.samples.features == [2, 1])
  }

  @Test(arguments: [
    (DatasetSpec(label: .column("y")), "x,y\n1,0\n2,2\n", "t.csv:3: column \"y\": \"2\" is not 0 or 1"),
    (DatasetSpec(label: .bits(["a", "b"])), "a,b,x\n0,1,1\n0,3,1\n", "t.csv:3: column \"b\": \"3\" is not 0 or 1"),
    (DatasetSpec(label: .column("y"), padTo: 1), "x,z,y\n1,2,0\n", "t.csv: pad_to 1 is smaller than the 2 features"),
    (DatasetSpec(label: .column("y"), features: ["x", "y"]), "x,y\n1,0\n", "t.csv: column \"y\" is both a label and a feature"),
    (DatasetSpec(label: .column("y"), features: ["x"], drop: ["x"]), "x,y\n1,0\n", "t.csv: column \"x\" is both dropped and a feature"),
    (DatasetSpec(label: .column("y"), features: ["x"], categorical: ["c"]), "x,c,y\n1,a,0\n",
     "t.csv: categorical column \"c\" is not a feature"),
    (DatasetSpec(label: .column("y"), drop: ["x"]), "x,y\n1,0\n", "t.csv: no feature columns left"),
    (DatasetSpec(label: .column("y"), drop: ["nope"]), "x,y\n1,0\n", "t.csv:1: unknown column \"nope\""),
  ])
  func badDescriptionsAreOneLineErrors(spec: DatasetSpec, text: String, expected: String) throws {
    let table = try table(text)
    #expect(DataTestSupport.errorMessage { _ = try spec.makeDataset(from: table) } == expected)
  }
}
