// pfc-bench: trains one PFC block at MNIST shape and reports throughput of the dense and the
// active-set (sparse) FISTA engines (issue 14), the fraction of sgemm peak, the active fraction per
// iteration, and one-example predict latency. It also writes the data and the starting weights so
// the PyTorch peer (Benchmarks/pfc/peer_torch.py) trains on exactly the same problem. Run through
// Benchmarks/pfc/run.sh. `--calibrate` times the sparse kernels against BLAS to place the
// dense/sparse threshold (FISTAInference.sparseThreshold).
import Foundation
import Linalg
import PFC

struct Options {
    var outDir = "/tmp/pfc-bench"
    var d = 784, k = 300, n = 100, b = 200, classes = 10
    var steps = 20, threads = 2, lr: Float = 1e-3
    var data = "synthetic"          // or "mnist"
    var mnistImages = "", mnistLabels = ""
    var pretrainSteps = 0            // steps of training before the measured ones (0: random init)
    var engines = "dense,sparse"
    var predict = false
    var calibrate = false
    var sgdLR: Float = 0             // > 0: plain gradient descent at this rate instead of RMSprop (loss-agreement check)
    var window = 15, slide = 0.25    // the "-slw" engines' sliding window (research/pfc.md §3.1: Split MNIST)
}

func parse() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst().makeIterator()
    while let a = args.next() {
        if a == "--predict" { o.predict = true; continue }
        if a == "--calibrate" { o.calibrate = true; continue }
        guard let v = args.next() else { break }
        switch a {
        case "--out-dir": o.outDir = v
        case "--steps": o.steps = Int(v)!
        case "--threads": o.threads = Int(v)!
        case "--basis": o.k = Int(v)!
        case "--iterations": o.n = Int(v)!
        case "--batch": o.b = Int(v)!
        case "--lr": o.lr = Float(v)!
        case "--data": o.data = v
        case "--mnist-images": o.mnistImages = v
        case "--mnist-labels": o.mnistLabels = v
        case "--pretrain-steps": o.pretrainSteps = Int(v)!
        case "--engines": o.engines = v
        case "--sgd-lr": o.sgdLR = Float(v)!
        case "--window": o.window = Int(v)!
        case "--slide": o.slide = Double(v)!
        default: fatalError("unknown option \(a)")
        }
    }
    return o
}

func write(_ values: [Float], _ path: String) {
    _ = values.withUnsafeBytes { FileManager.default.createFile(atPath: path, contents: Data($0)) }
}

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }

/// Best-of-5 sgemm rate at 1024³ with the current thread count, in GFLOPS.
func sgemmPeak() -> Double {
    var rng = SeededRandom(seed: 1)
    let a = rng.uniformMatrix(rows: 1024, cols: 1024), b = rng.uniformMatrix(rows: 1024, cols: 1024)
    var best = Double.infinity
    for _ in 0..<5 {
        let t = ContinuousClock.now
        _ = Matrix.product(a, b)
        best = min(best, seconds(ContinuousClock.now - t))
    }
    return 2 * 1024 * 1024 * 1024 / best / 1e9
}

/// MNIST from uncompressed IDX files, pixels scaled to [0, 1] (research/pfc.md: divide by 255).
func loadMNIST(images: String, labels: String, limit: Int) -> LabeledDataset {
    let img = FileManager.default.contents(atPath: images)!, lab = FileManager.default.contents(atPath: labels)!
    func u32(_ d: Data, _ o: Int) -> Int { d[o..<(o + 4)].reduce(0) { $0 << 8 | Int($1) } }
    precondition(u32(img, 0) == 2051 && u32(lab, 0) == 2049, "not IDX image/label files")
    let n = min(u32(img, 4), limit), pixels = u32(img, 8) * u32(img, 12)
    var x = Matrix(rows: n, cols: pixels)
    img.withUnsafeBytes { (p: UnsafeRawBufferPointer) in
        for i in 0..<(n * pixels) { x.storage[i] = Float(p[16 + i]) / 255 }
    }
    return LabeledDataset(features: x, labels: (0..<n).map { Int(lab[8 + $0]) }, classes: 10)
}

/// Synthetic MNIST-like data: 10 sparse non-negative prototypes, each example a scaled, noisy
/// copy of its class prototype clipped to [0, 1]. Fixed seed, so every run trains the same problem.
func synthetic(_ o: Options, examples: Int) -> LabeledDataset {
    var rng = SeededRandom(seed: 0)
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
    return LabeledDataset(features: x, labels: labels, classes: o.classes)
}

func withKernel(_ net: PFCClassifier, _ kernel: FISTAKernel) -> PFCClassifier {
    var n = net
    n.block.settings.kernel = kernel
    return n
}

struct RunResult {
    var losses: [Float] = [], seconds = 0.0, meanActive: [Float] = [], curveFirst: [Float] = [], curveLast: [Float] = []
    var sparseShare: [Float] = []
}

/// Trains `steps` batches starting at batch `first`; step 0 warms up and is not timed.
func train(_ start: PFCClassifier, _ data: LabeledDataset, first: Int, steps: Int, o: Options) -> (PFCClassifier, RunResult) {
    var run = EngineRun(start, o: o)
    for step in 0..<steps { run.step(data, batch: first + step, timed: step > 0, o: o) }
    return (run.net, run.result)
}

/// One engine's training run, advanced one batch at a time (so several engines can interleave).
struct EngineRun {
    var net: PFCClassifier
    var optimizer: RMSprop
    /// "-slw" engines: the sliding window instead of RMSprop; `windowGradientOnly` forms only the
    /// window's W_x gradient ("-slw"), otherwise the whole gradient as before ("-slw-full").
    var window: SlidingWindowOptimizer?
    var windowGradientOnly = false
    var result = RunResult()
    init(_ start: PFCClassifier, o: Options, engine: String = "") {
        net = start
        optimizer = RMSprop(learningRate: o.lr, weightDecay: 1e-4)
        if engine.contains("-slw") {
            window = SlidingWindowOptimizer(learningRate: o.lr, weightDecay: 1e-4, width: o.window, slide: o.slide)
            windowGradientOnly = !engine.hasSuffix("-full")
        }
    }

    mutating func step(_ data: LabeledDataset, batch: Int, timed: Bool, o: Options) {
        let batches = data.features.rows / o.b
        let bi = batch % batches
        let (xb, lb) = data.batch((bi * o.b)..<((bi + 1) * o.b))
        let t = ContinuousClock.now
        let res = net.lossAndGradients(x: xb, labels: lb, gradientColumns: windowGradientOnly ? window?.window : nil)
        var p = net.parameters
        if window != nil {
            _ = try! window!.stepChecked(&p, gradients: res.gradients)
        } else if o.sgdLR > 0 {
            // p ← p − lr·g (clipped like the optimizers): no per-entry normalisation, so a rounding
            // difference in a near-zero gradient stays near zero instead of becoming a full step.
            for i in p.indices {
                let g = res.gradients[i].storage, clip = p[i].nonnegative
                p[i].value.storage.withUnsafeMutableBufferPointer { v in
                    for j in v.indices {
                        v[j] -= o.sgdLR * g[j]
                        if clip && v[j] < nonnegativeFloor { v[j] = nonnegativeFloor }
                    }
                }
            }
        } else {
            optimizer.step(&p, gradients: res.gradients)
        }
        net.parameters = p
        if timed { result.seconds += seconds(ContinuousClock.now - t) }
        result.losses.append(res.loss)
        if let s = FISTAStatistics.lastTraining {
            result.meanActive.append(s.meanActiveFraction)
            result.sparseShare.append(s.sparseFraction)
            if result.curveFirst.isEmpty { result.curveFirst = s.activeFraction }
            result.curveLast = s.activeFraction
        }
    }
}

/// Times the sparse kernels against the dense BLAS product for a B_c = 100 chunk, one thread.
func calibrate() {
    var rng = SeededRandom(seed: 3)
    let levels = SparseRowKernels.availableVectorLevels
    print("| K | kernels | active fraction | dense gemm ms | sparse gather ms | sparse scatter (Ā) ms | gather / dense | scatter / dense | gather by columns / dense |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k in [300, 2000] {
        let bc = 100
        let a = rng.uniformMatrix(rows: k, cols: k), z = rng.uniformMatrix(rows: bc, cols: k)
        var out = [Float](repeating: 0, count: bc * k), abar = [Float](repeating: 0, count: k * k)
        func time(_ body: () -> Void) -> Double {
            var best = Double.infinity
            for _ in 0..<(k > 1000 ? 3 : 10) { let t = ContinuousClock.now; body(); best = min(best, seconds(ContinuousClock.now - t)) }
            return best * 1e3
        }
        let dense = a.storage.withUnsafeBufferPointer { ap in z.storage.withUnsafeBufferPointer { zp in out.withUnsafeMutableBufferPointer { op in
            time { BLAS.gemm(.none, .none, m: bc, n: k, k: k, alpha: 1, a: zp.baseAddress!, lda: k, b: ap.baseAddress!, ldb: k, beta: 1, c: op.baseAddress!, ldc: k) }
        } } }
        for level in levels { SparseRowKernels.setVectorLevel(level)
        for f in [0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7] {
            var idx = [Int32](repeating: 0, count: bc * k), val = [Float](repeating: 0.5, count: bc * k), cnt = [Int32](repeating: 0, count: bc)
            for r in 0..<bc {
                var c = 0
                for j in 0..<k where rng.uniform() < Float(f) { idx[r * k + c] = Int32(j); c += 1 }
                cnt[r] = Int32(c)
            }
            let (g, s, gc) = a.storage.withUnsafeBufferPointer { ap in z.storage.withUnsafeBufferPointer { zp in out.withUnsafeMutableBufferPointer { op in
                abar.withUnsafeMutableBufferPointer { abp in
                idx.withUnsafeBufferPointer { ip in val.withUnsafeBufferPointer { vp in cnt.withUnsafeBufferPointer { cp in
                    let g = time { SparseRowKernels.gatherAccumulate(rows: bc, capacity: k, counts: cp.baseAddress!, indices: ip.baseAddress!, values: vp.baseAddress!,
                                                                     a: ap.baseAddress!, lda: k, n: k, out: op.baseAddress!, ldo: k, panelRows: k) }
                    let s = time {
                        SparseRowKernels.scatterTransposed(rows: bc, capacity: k, k: k, counts: cp.baseAddress!, indices: ip.baseAddress!,
                                                           values: vp.baseAddress!, z: zp.baseAddress!, ldz: k, n: k, c: abp.baseAddress!, ldc: k)
                    }
                    let gc = time { SparseRowKernels.gatherByColumns(rows: bc, capacity: k, k: k, counts: cp.baseAddress!, indices: ip.baseAddress!,
                                                                     values: vp.baseAddress!, a: ap.baseAddress!, lda: k, n: k, out: op.baseAddress!, ldo: k) }
                    return (g, s, gc)
                } } }
            } } } }
            print(String(format: "| %d | \(["portable", "avx2+fma", "avx-512"][Int(level.rawValue)]) | %.2f | %.3f | %.3f | %.3f | %.2f | %.2f | %.2f |", k,
                         f, dense, g, s, g / dense, s / dense, gc / dense))
        }
        }
        SparseRowKernels.setVectorLevel(.avx512)
    }
}

let o = parse()
if o.calibrate {
    BLAS.setThreads(1)
    calibrate()
    exit(0)
}
BLAS.setThreads(o.threads)
try? FileManager.default.createDirectory(atPath: o.outDir, withIntermediateDirectories: true)

let needed = (o.pretrainSteps + o.steps) * o.b
let data = o.data == "mnist" ? loadMNIST(images: o.mnistImages, labels: o.mnistLabels, limit: 60_000) : synthetic(o, examples: needed)
let arch = Architecture(kind: .pfc, inputDim: o.d, outputDim: o.classes, basis: o.k, iterations: o.n)
var initial = NetworkFactory.make(arch, seed: 0) as! PFCClassifier

let peak = sgemmPeak() // with o.threads BLAS threads: the machine's sgemm peak
ComputeThreads.set(o.threads) // training splits each batch over o.threads, one BLAS thread each
var result: [String: Any] = ["threads": o.threads, "sgemm_peak_gflops": peak, "basis": o.k, "data": o.data,
                             "pretrain_steps": o.pretrainSteps, "steps": o.steps, "examples": data.features.rows]
var pretrainSeconds = 0.0
if o.pretrainSteps > 0 {
    // The "trained" start: the given number of batches of training (sparse engine: same function, faster).
    let (trained, r) = train(withKernel(initial, .automatic), data, first: 0, steps: o.pretrainSteps, o: o)
    initial = withKernel(trained, .automatic)
    pretrainSeconds = r.seconds
    result["pretrain_final_loss"] = Double(r.losses.last ?? 0)
}
result["pretrain_seconds"] = pretrainSeconds
let first = o.pretrainSteps
// The measured batches and starting weights, for the PyTorch peer.
let batches = data.features.rows / o.b
var xs = [Float](), ys = [Float]()
for s in 0..<o.steps {
    let bi = (first + s) % batches
    for e in (bi * o.b)..<((bi + 1) * o.b) {
        xs.append(contentsOf: data.features.row(e))
        ys.append(Float(data.labels[e]))
    }
}
write(xs, "\(o.outDir)/x.f32")
write(ys, "\(o.outDir)/y.f32")
write(initial.block.wx.storage, "\(o.outDir)/wx.f32")
write(initial.block.wy.storage, "\(o.outDir)/wy.f32")

let (d, k, n, b) = (Double(o.d), Double(o.k), Double(o.n), Double(o.b))
// FLOPs of one dense training step in the Gram form: forward N·2BK² + WᵀW 2dK² + XᵀW 2dBK; backward
// N·2BK² (Z̄) + 2NBK² (stacked Ā) + W·S 2dK² + X·B̄ and W·B̄ᵀ 4dBK; plus the small W_y products.
let flopsPerStep = 6 * n * b * k * k + 4 * d * k * k + 6 * d * b * k + 6 * Double(o.classes) * k * b
var engines: [String: Any] = [:]
// The engines train interleaved, one batch each in turn (each on its own copy of the start), so a
// shared machine's load swings hit all of them alike and their ratio is measured back to back.
let engineNames = o.engines.split(separator: ",").map(String.init)
var runs = engineNames.map { engine -> EngineRun in
    let kernel: FISTAKernel = engine.hasPrefix("dense") ? .dense : .automatic
    return EngineRun(withKernel(initial, kernel), o: o, engine: engine)
}
for step in 0..<o.steps {
    for (i, engine) in engineNames.enumerated() {
        // "dense-1chunk": the dense engine with the batch in one chunk (BLAS threads instead): the same
        // function summed in another order, the float-rounding yardstick for the loss agreement.
        if engine == "dense-1chunk" { ComputeThreads.set(1); BLAS.setThreads(o.threads) } else { ComputeThreads.set(o.threads); BLAS.setThreads(1) }
        runs[i].step(data, batch: first + step, timed: step > 0, o: o)
    }
}
for (i, engine) in engineNames.enumerated() {
    let r = runs[i].result
    let sps = Double(o.steps - 1) / r.seconds
    engines[engine] = [
        "examples_per_second": sps * b, "gflops_equivalent": flopsPerStep * sps / 1e9, "seconds": r.seconds,
        "fraction_of_peak": flopsPerStep * sps / 1e9 / peak, "losses": r.losses.map(Double.init),
        "mean_active_per_step": r.meanActive.map(Double.init), "sparse_share_per_step": r.sparseShare.map(Double.init),
        "active_curve_first_step": r.curveFirst.map(Double.init), "active_curve_last_step": r.curveLast.map(Double.init),
    ] as [String: Any]
}
result["engines"] = engines

if o.predict {
    // One example at a time, no tape: dense against the automatic (sparse) engine on the start weights.
    var lat: [String: Double] = [:]
    let reps = 200
    for (name, kernel) in [("dense", FISTAKernel.dense), ("sparse", .automatic)] {
        let net = withKernel(initial, kernel)
        _ = net.predict(data.batch(0..<1).0)
        let t = ContinuousClock.now
        for i in 0..<reps { _ = net.predict(data.batch(i..<(i + 1)).0) }
        lat[name] = seconds(ContinuousClock.now - t) / Double(reps) * 1e3
        if name == "sparse", let s = FISTAStatistics.lastPrediction { result["predict_active_curve"] = s.activeFraction.map(Double.init) }
    }
    result["predict_ms"] = lat
}
let json = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
print(String(decoding: json, as: UTF8.self))
