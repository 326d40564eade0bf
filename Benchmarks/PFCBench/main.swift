// pfc-bench: trains one PFC block at MNIST shape on synthetic data and reports throughput and
// the fraction of sgemm peak. It also writes the data and initial weights so the PyTorch peer
// (Benchmarks/pfc/peer_torch.py) trains on exactly the same problem. Run through Benchmarks/pfc/run.sh.
import Foundation
import Linalg
import PFC

struct Options {
    var outDir = "/tmp/pfc-bench"
    var d = 784, k = 300, n = 100, b = 200, classes = 10
    var steps = 20, threads = 2, lr: Float = 1e-3
}

func parse() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst().makeIterator()
    while let a = args.next() {
        guard let v = args.next() else { break }
        switch a {
        case "--out-dir": o.outDir = v
        case "--steps": o.steps = Int(v)!
        case "--threads": o.threads = Int(v)!
        case "--basis": o.k = Int(v)!
        case "--iterations": o.n = Int(v)!
        case "--batch": o.b = Int(v)!
        case "--lr": o.lr = Float(v)!
        default: fatalError("unknown option \(a)")
        }
    }
    return o
}

func write(_ values: [Float], _ path: String) {
    _ = values.withUnsafeBytes { FileManager.default.createFile(atPath: path, contents: Data($0)) }
}

/// Best-of-5 sgemm rate at 1024³ with the current thread count, in GFLOPS.
func sgemmPeak() -> Double {
    var rng = SeededRandom(seed: 1)
    let a = rng.uniformMatrix(rows: 1024, cols: 1024), b = rng.uniformMatrix(rows: 1024, cols: 1024)
    var best = Double.infinity
    for _ in 0..<5 {
        let t = ContinuousClock.now
        _ = Matrix.product(a, b)
        let s = (ContinuousClock.now - t)
        best = min(best, Double(s.components.seconds) + Double(s.components.attoseconds) * 1e-18)
    }
    return 2 * 1024 * 1024 * 1024 / best / 1e9
}

let o = parse()
BLAS.setThreads(o.threads)
try? FileManager.default.createDirectory(atPath: o.outDir, withIntermediateDirectories: true)

// Synthetic MNIST-like data: 10 sparse non-negative prototypes, each example a scaled, noisy
// copy of its class prototype clipped to [0, 1]. Fixed seed, so every run trains the same problem.
var rng = SeededRandom(seed: 0)
let examples = o.steps * o.b
var prototypes = rng.uniformMatrix(rows: o.classes, cols: o.d)
for i in 0..<prototypes.count where rng.uniform() < 0.7 { prototypes.storage[i] = 0 }
var x = Matrix(rows: examples, cols: o.d)
var labels = [Int]()
for e in 0..<examples {
    let c = Int(rng.next() % UInt64(o.classes))
    labels.append(c)
    let s = 0.5 + 0.5 * rng.uniform()
    for i in 0..<o.d { x[e, i] = min(1, max(0, s * prototypes[c, i] + 0.1 * (rng.uniform() - 0.5))) }
}
let data = LabeledDataset(features: x, labels: labels, classes: o.classes)
var arch = Architecture(kind: .pfc, inputDim: o.d, outputDim: o.classes, basis: o.k, iterations: o.n)
var network: any Network = NetworkFactory.make(arch, seed: 0)
write(x.storage, "\(o.outDir)/x.f32")
write(labels.map { Float($0) }, "\(o.outDir)/y.f32")
write(network.parameters[0].value.storage, "\(o.outDir)/wx.f32")
write(network.parameters[1].value.storage, "\(o.outDir)/wy.f32")

let peak = sgemmPeak() // with o.threads BLAS threads: the machine's sgemm peak
ComputeThreads.set(o.threads) // training splits each batch over o.threads, one BLAS thread each
var optimizer = RMSprop(learningRate: o.lr, weightDecay: 1e-4)
var losses = [Float]()
var timed = 0.0
for step in 0..<o.steps {
    let (xb, lb) = data.batch((step * o.b)..<((step + 1) * o.b))
    let t = ContinuousClock.now
    let r = network.lossAndGradients(x: xb, labels: lb)
    var p = network.parameters
    optimizer.step(&p, gradients: r.gradients)
    network.parameters = p
    let s = ContinuousClock.now - t
    if step > 0 { timed += Double(s.components.seconds) + Double(s.components.attoseconds) * 1e-18 } // step 0 warms up
    losses.append(r.loss)
}
let (d, k, n, b) = (Double(o.d), Double(o.k), Double(o.n), Double(o.b))
// FLOPs of one training step in the Gram form: forward N·2BK² + WᵀW 2dK² + XᵀW 2dBK; backward
// N·2BK² (Z̄) + 2NBK² (stacked Ā) + W·S 2dK² + X·B̄ and W·B̄ᵀ 4dBK; plus the small W_y products.
let flopsPerStep = 6 * n * b * k * k + 4 * d * k * k + 6 * d * b * k + 6 * Double(o.classes) * k * b
let stepsPerSecond = Double(o.steps - 1) / timed
let gflops = flopsPerStep * stepsPerSecond / 1e9
let result: [String: Any] = [
    "examples_per_second": stepsPerSecond * b, "gflops": gflops, "sgemm_peak_gflops": peak,
    "fraction_of_peak": gflops / peak, "losses": losses.map(Double.init), "threads": o.threads,
]
let json = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
print(String(decoding: json, as: UTF8.self))
