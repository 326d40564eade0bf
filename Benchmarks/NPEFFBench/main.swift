// pfc-npeff: the compute acceptance of NPEFF (issue 7) on the digits fixture. Trains a PFC classifier, computes
// D-PEFs and LRM-PEFs, fits D-NPEFF and LRM-NPEFF, runs the guided perturbation of every component (npeff.md §5)
// and prints the KL-ratio / PEF-norm-ratio tables and the top examples of two components. With `--sklearn-dir`
// it also writes the pruned D-PEF matrix and a shared initialisation, times D-NPEFF's NMF on it, and leaves the
// rest to Benchmarks/npeff/peer_sklearn.py. Run through Benchmarks/npeff/run.sh.
import Foundation
import Linalg
import NPEFF
import PFC

struct Options {
    var data = "Tests/PFCTests/Fixtures/digits_train.csv"
    var threads = 2
    var basis = 300, iterations = 100, epochs = 15
    var lr: Float = 2e-3
    var components = 32
    var topK = 2000                 // values kept per PEF
    var classThreshold: Float = 3e-3
    var dSteps = 500                // D-NPEFF multiplicative steps
    var lrmGOnly = 100, lrmJoint = 500
    var lrmLR: Float = 1e-3
    var top = 32, baseline = 512    // perturbation evaluation sets
    var magnitude: Float = 0.1      // LRM δ norm
    var dTarget = 0.01...0.02       // D KL targeting range (mean KL on the top examples)
    var sklearnDir: String? = nil   // write the NMF problem here and time D-NPEFF's NMF on it
    var sklearnSteps = 200
    var skipDigits = false
    var nmfFrom: String? = nil      // re-time D-NPEFF's NMF on a problem an earlier run wrote (no training, no PEFs)
}

func parse() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst().makeIterator()
    while let a = args.next() {
        if a == "--nmf-only" { o.skipDigits = true; continue }
        guard let v = args.next() else { fatalError("\(a) needs a value") }
        switch a {
        case "--data": o.data = v
        case "--threads": o.threads = Int(v)!
        case "--basis": o.basis = Int(v)!
        case "--iterations": o.iterations = Int(v)!
        case "--epochs": o.epochs = Int(v)!
        case "--lr": o.lr = Float(v)!
        case "--components": o.components = Int(v)!
        case "--top-k": o.topK = Int(v)!
        case "--d-steps": o.dSteps = Int(v)!
        case "--lrm-g-only": o.lrmGOnly = Int(v)!
        case "--lrm-joint": o.lrmJoint = Int(v)!
        case "--lrm-lr": o.lrmLR = Float(v)!
        case "--top": o.top = Int(v)!
        case "--baseline": o.baseline = Int(v)!
        case "--magnitude": o.magnitude = Float(v)!
        case "--d-target":
            let p = v.split(separator: ",").map { Double($0)! }
            o.dTarget = p[0]...p[1]
        case "--sklearn-dir": o.sklearnDir = v
        case "--sklearn-steps": o.sklearnSteps = Int(v)!
        case "--nmf-from": o.nmfFrom = v
        default: fatalError("unknown option \(a)")
        }
    }
    return o
}

func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let t = ContinuousClock.now
    let v = try body()
    let d = ContinuousClock.now - t
    return (v, Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
}

func median(_ v: [Double]) -> Double {
    let s = v.sorted()
    return s.isEmpty ? .nan : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
}

func f(_ x: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", x) }
func e(_ x: Double) -> String { String(format: "%.2e", x) }
func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }

func write<T>(_ values: [T], _ path: String) {
    _ = values.withUnsafeBytes { FileManager.default.createFile(atPath: path, contents: Data($0)) }
}

func read<T>(_ path: String, as: T.Type) -> [T] {
    let d = FileManager.default.contents(atPath: path)!
    return d.withUnsafeBytes { Array($0.bindMemory(to: T.self)) }
}

/// Times D-NPEFF's NMF (best of `repeats`, after a 2-step warm-up) from the given start.
func timeNMF(_ a: SparseRows, w0: Matrix, h0: Matrix, steps: Int, repeats: Int = 3)
    -> (seconds: [Double], w: Matrix, h: Matrix, logged: Double) {
    let r = w0.cols
    _ = DNPEFF.factorize(a, options: DNPEFFOptions(components: r, iterations: 2), initialW: w0, initialH: h0)
    var times = [Double](), last: (w: Matrix, h: Matrix, losses: [(step: Int, loss: Double)])? = nil
    for _ in 0..<repeats {
        let (res, s) = timed { DNPEFF.factorize(a, options: DNPEFFOptions(components: r, iterations: steps), initialW: w0, initialH: h0) }
        times.append(s)
        last = res
    }
    return (times, last!.w, last!.h, last!.losses.last!.loss)
}

/// ‖A − WH‖_F² in Double, from scratch (the same formula the peer uses).
func nmfLoss(_ a: SparseRows, _ w: Matrix, _ h: Matrix) -> Double {
    var total = a.squaredNorm
    let r = w.cols
    for i in 0..<a.rows {
        for e in a.rowOffsets[i]..<a.rowOffsets[i + 1] {
            let c = Int(a.columns[e])
            var wh = 0.0
            for j in 0..<r { wh += Double(w[i, j]) * Double(h[j, c]) }
            total -= 2 * Double(a.values[e]) * wh
        }
    }
    let wtw = Matrix.product(w, w, transA: .transposed), hht = Matrix.product(h, h, transB: .transposed)
    for k in 0..<wtw.count { total += Double(wtw.storage[k]) * Double(hht.storage[k]) }
    return total
}

struct ComponentRow {
    var component: Int, klRatio: Double, normRatio: Double, sign: Float, topKL: Double, baseKL: Double
    var topAcc: Double, baseAcc: Double, origTopAcc: Double, majority: (label: Int, share: Double), extra: String
}

func majority(_ labels: [Int]) -> (label: Int, share: Double) {
    var counts = [Int: Int]()
    for l in labels { counts[l, default: 0] += 1 }
    let best = counts.max { ($0.value, -$0.key) < ($1.value, -$1.key) }!
    return (best.key, Double(best.value) / Double(labels.count))
}

func printTable(_ title: String, _ rows: [ComponentRow], extraHeader: String) {
    print("\n\(title)")
    print("  comp  KL-ratio  sign  PEF-norm-ratio   KL(top)   KL(base)  acc top orig→pert  acc base  top-label(share)  \(extraHeader)")
    for r in rows {
        print("  \(pad(String(r.component), 4))  \(pad(f(r.klRatio, 2), 8))  \(pad(r.sign > 0 ? "+" : "−", 4))  \(pad(f(r.normRatio, 3), 14))"
              + "  \(pad(e(r.topKL), 8))  \(pad(e(r.baseKL), 9))  \(pad(f(r.origTopAcc, 2) + "→" + f(r.topAcc, 2), 17))"
              + "  \(pad(f(r.baseAcc, 3), 8))  \(pad("\(r.majority.label) (\(f(r.majority.share, 2)))", 16))  \(r.extra)")
    }
    let kl = median(rows.map(\.klRatio)), nr = median(rows.map(\.normRatio))
    let above = rows.filter { $0.klRatio > $0.normRatio }.count
    print("  median KL-ratio \(f(kl, 2)), median PEF-norm ratio \(f(nr, 3)); KL-ratio > PEF-norm ratio for \(above)/\(rows.count) components")
}

func printTopExamples(_ title: String, w: Matrix, component k: Int, pefs: PEFExamples, count: Int) {
    print("\n\(title)")
    print("   row  label  prediction  coefficient")
    for i in GuidedPerturbation.topExamples(coefficients: w, component: k, count: count) {
        print("  \(pad(String(i), 4))  \(pad(String(pefs.labels[i]), 5))  \(pad(String(pefs.predictions[i]), 10))  \(pad(e(Double(w[i, k])), 11))")
    }
}

// MARK: - Run

let o = parse()
ComputeThreads.set(o.threads)
if let dir = o.nmfFrom {
    let meta = try JSONSerialization.jsonObject(with: FileManager.default.contents(atPath: "\(dir)/swift.json")!) as! [String: Any]
    let (n, m, r) = (meta["rows"] as! Int, meta["cols"] as! Int, meta["components"] as! Int)
    let a = SparseRows(rows: n, cols: m, rowOffsets: read("\(dir)/indptr.i64", as: Int64.self).map { Int($0) },
                       columns: read("\(dir)/indices.i32", as: Int32.self), values: read("\(dir)/data.f32", as: Float.self))
    let t = timeNMF(a, w0: Matrix(rows: n, cols: r, storage: read("\(dir)/w0.f32", as: Float.self)),
                    h0: Matrix(rows: r, cols: m, storage: read("\(dir)/h0.f32", as: Float.self)), steps: o.sklearnSteps)
    print("D-NPEFF NMF on \(dir): \(n) × \(m), r = \(r), \(o.sklearnSteps) steps: \(t.seconds.map { f($0, 3) }) s, loss \(f(nmfLoss(a, t.w, t.h), 6))")
    exit(0)
}
let command = CommandLine.arguments.joined(separator: " ")
print("command: \(command)")
let data = try CSVDatasetReader.read(path: o.data, rules: .init(requireNonNegative: true, classes: 10))
print("data: \(o.data), \(data.count) rows × \(data.featureCount) features, \(data.classes) classes; \(o.threads) threads")

// 1. Train a PFC classifier.
let arch = Architecture(kind: .pfc, inputDim: data.featureCount, outputDim: data.classes, basis: o.basis, iterations: o.iterations)
var network: any Network = NetworkFactory.make(arch, seed: 0)
var trainOptions = TrainingOptions()
trainOptions.epochs = o.epochs
trainOptions.learningRate = o.lr
let (report, trainSeconds) = timed { Trainer(options: trainOptions).train(&network, on: data) }
let full = Trainer.evaluate(network, on: data)
print("model: pfc K=\(o.basis) N=\(o.iterations), \(network.parameterCount) parameters, lr \(o.lr), \(report.epochsRun) epochs "
      + "(best \(report.bestEpoch)) in \(f(trainSeconds, 1)) s; validation accuracy \(f(Double(report.validationAccuracy ?? .nan), 3)), "
      + "accuracy on all rows \(f(Double(full.accuracy), 3))")
guard let net = network as? any SeededBackward else { fatalError("the model has no seeded backward") }

// 2. PEFs of every row (D and LRM from the same per-example Fisher factors).
let pefOptions = PEFOptions(likelihood: .softmax, classThreshold: o.classThreshold, topK: o.topK)
let ((dRaw, lrmRaw), pefSeconds) = timed { PEFComputer.both(net, data: data, options: pefOptions) }
let dPEFs = dRaw.pruned(), lrmPEFs = lrmRaw.pruned()
let meanClasses = Double(lrmPEFs.matrix.rows) / Double(lrmPEFs.count)
print("PEFs: \(data.count) examples in \(f(pefSeconds, 2)) s (softmax likelihood, class threshold \(o.classThreshold), "
      + "\(f(meanClasses, 2)) classes/example, top-K \(o.topK)); kept positions m' = \(dPEFs.keptColumns.count) (D), "
      + "\(lrmPEFs.keptColumns.count) (LRM) of m = \(dPEFs.parameterCount)")

// 3. The NMF benchmark problem (the pruned D-PEF matrix), timed here; the peer runs scikit-learn on the same files.
if let dir = o.sklearnDir {
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let a = dPEFs.matrix, r = o.components
    var rng = SeededRandom(seed: 43_190_432_042)
    let w0 = rng.uniformMatrix(rows: a.rows, cols: r), h0 = rng.uniformMatrix(rows: r, cols: a.cols)
    write(a.rowOffsets.map { Int64($0) }, "\(dir)/indptr.i64")
    write(a.columns, "\(dir)/indices.i32")
    write(a.values, "\(dir)/data.f32")
    write(w0.storage, "\(dir)/w0.f32")
    write(h0.storage, "\(dir)/h0.f32")
    let t = timeNMF(a, w0: w0, h0: h0, steps: o.sklearnSteps)
    let (times, result) = (t.seconds, (w: t.w, h: t.h, logged: t.logged))
    write(result.w.storage, "\(dir)/w_swift.f32")
    write(result.h.storage, "\(dir)/h_swift.f32")
    let meta: [String: Any] = [
        "rows": a.rows, "cols": a.cols, "nnz": a.nonzeros, "components": r, "iterations": o.sklearnSteps,
        "threads": o.threads, "swift_seconds": times.min()!, "swift_seconds_all": times,
        "swift_loss": nmfLoss(a, result.w, result.h), "swift_loss_logged": result.logged,
        "initial_loss": nmfLoss(a, w0, h0),
    ]
    _ = FileManager.default.createFile(atPath: "\(dir)/swift.json", contents: try JSONSerialization.data(withJSONObject: meta))
    print("NMF benchmark problem: \(a.rows) × \(a.cols), \(a.nonzeros) non-zeros, r = \(r), \(o.sklearnSteps) steps; "
          + "D-NPEFF best of 3: \(f(times.min()!, 3)) s, loss \(f(nmfLoss(a, result.w, result.h), 6)) (written to \(dir))")
}
if o.skipDigits { exit(0) }

// 4. Decompositions.
let (dDec, dSeconds) = timed { DNPEFF.fit(dPEFs, options: DNPEFFOptions(components: o.components, iterations: o.dSteps)) }
let lrmOptions = LRMNPEFFOptions(components: o.components, gOnlyIterations: o.lrmGOnly, jointIterations: o.lrmJoint, learningRate: o.lrmLR)
let (lrmDec, lrmSeconds) = timed { LRMNPEFF.fit(lrmPEFs, options: lrmOptions) }
print("LRM-NPEFF losses: " + lrmDec.losses.filter { $0.step % 100 == 0 || $0.step == 1 }.map { "\($0.phase)@\($0.step) \(f($0.loss, 4))" }.joined(separator: ", "))
print("D-NPEFF losses: " + dDec.losses.filter { $0.step % 100 == 0 }.map { "@\($0.step) \(f($0.loss, 3))" }.joined(separator: ", "))
let lrmSteps = o.lrmGOnly + o.lrmJoint
let dA2 = dPEFs.matrix.squaredNorm
print("D-NPEFF: r=\(o.components), \(o.dSteps) steps in \(f(dSeconds, 2)) s (\(f(1000 * dSeconds / Double(o.dSteps), 2)) ms/step); "
      + "loss \(f(dDec.losses.first!.loss, 4)) → \(f(dDec.losses.last!.loss, 4)) (‖A‖² = \(f(dA2, 1)))")
print("LRM-NPEFF: r=\(o.components), \(o.lrmGOnly) G-only + \(o.lrmJoint) joint steps (η \(o.lrmLR)) in \(f(lrmSeconds, 2)) s "
      + "(\(f(1000 * lrmSeconds / Double(lrmSteps), 2)) ms/step); loss \(f(lrmDec.losses.first!.loss, 4)) → \(f(lrmDec.losses.last!.loss, 4)) "
      + "(\(lrmPEFs.count) unit-norm PEFs)")

// 5. Guided perturbations of every component.
let baseline = GuidedPerturbation.randomExamples(data.count, count: min(o.baseline, data.count), seed: 7)
let norms = lrmPEFs.examples.norms // ‖F_i‖_F (the same dense PEF for D and LRM)
let dNorms = dPEFs.examples.norms  // ‖f_i‖ (diagonal) for the D-NPEFF norm ratio

let (lrmRows, lrmPerturbSeconds) = timed {
    (0..<o.components).map { k -> ComponentRow in
        let top = GuidedPerturbation.topExamples(coefficients: lrmDec.w, component: k, count: o.top)
        let offset = GuidedPerturbation.scaled(GuidedPerturbation.lrmDirection(lrmDec, component: k), magnitude: o.magnitude)
        let r = GuidedPerturbation.evaluate(net, offset: offset, data: data, top: top, baseline: baseline, norms: norms, likelihood: .softmax)
        return ComponentRow(component: k, klRatio: r.best.klRatio, normRatio: r.best.pefNormRatio, sign: r.best.sign,
                            topKL: r.best.topKL, baseKL: r.best.baselineKL, topAcc: r.best.topAccuracy,
                            baseAcc: r.best.baselineAccuracy, origTopAcc: r.best.originalTopAccuracy,
                            majority: majority(top.map { data.labels[$0] }), extra: "")
    }
}
let (dRows, dPerturbSeconds) = timed {
    (0..<o.components).map { k -> ComponentRow in
        let top = GuidedPerturbation.topExamples(coefficients: dDec.w, component: k, count: o.top)
        let s = GuidedPerturbation.lossGradientSign(net, data: data, examples: top)
        let found = GuidedPerturbation.targetKL(net, data: data, top: top, targetKL: o.dTarget, likelihood: .softmax) { lambda in
            GuidedPerturbation.dDirection(dDec, component: k, datasetFisher: dPEFs.datasetFisher, lossGradientSign: s, lambda: lambda)
        }
        let r = GuidedPerturbation.evaluate(net, offset: found.offset, data: data, top: top, baseline: baseline, norms: dNorms, likelihood: .softmax)
        let norm = found.offset.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
        return ComponentRow(component: k, klRatio: r.best.klRatio, normRatio: r.best.pefNormRatio, sign: r.best.sign,
                            topKL: r.best.topKL, baseKL: r.best.baselineKL, topAcc: r.best.topAccuracy,
                            baseAcc: r.best.baselineAccuracy, origTopAcc: r.best.originalTopAccuracy,
                            majority: majority(top.map { data.labels[$0] }),
                            extra: "δ \(e(Double(found.delta))) λ \(f(Double(found.lambda), 3)) ‖offset‖ \(e(Double(norm))) "
                                + "KL(top, targeted sign) \(e(found.kl))\(o.dTarget.contains(found.kl) ? "" : " (missed)")")
    }
}
print("perturbations: top \(o.top) examples per component vs \(baseline.count) random rows (seed 7), both signs; "
      + "LRM ‖δ‖ = \(o.magnitude) (\(f(lrmPerturbSeconds, 1)) s), D KL-targeted to mean KL(top) in \(o.dTarget) (\(f(dPerturbSeconds, 1)) s)")
printTable("LRM-NPEFF guided perturbations (δ ∝ ±g_j after rejection, |cos| ≤ 0.35; ‖δ‖ = \(o.magnitude))", lrmRows, extraHeader: "")
printTable("D-NPEFF guided perturbations (Fisher-weighted blend, KL-targeted)", dRows, extraHeader: "δ, λ, offset norm, KL reached by the targeting")

let lrmMedian = median(lrmRows.map(\.klRatio)), dMedian = median(dRows.map(\.klRatio))
let lrmNorm = median(lrmRows.map(\.normRatio)), dNorm = median(dRows.map(\.normRatio))
print("\nTARGETS")
print("  LRM-NPEFF median KL-ratio \(f(lrmMedian, 2)) ≥ 4 and > median PEF-norm ratio \(f(lrmNorm, 3)): \(lrmMedian >= 4 && lrmMedian > lrmNorm ? "MET" : "NOT MET")")
print("  D-NPEFF   median KL-ratio \(f(dMedian, 2)) ≥ 3 and > median PEF-norm ratio \(f(dNorm, 3)): \(dMedian >= 3 && dMedian > dNorm ? "MET" : "NOT MET")")

// 6. Top examples of two components: the LRM and the D component with the largest KL ratio.
let bestLRM = lrmRows.max { $0.klRatio < $1.klRatio }!.component
let bestD = dRows.max { $0.klRatio < $1.klRatio }!.component
printTopExamples("Top examples of LRM-NPEFF component \(bestLRM)", w: lrmDec.w, component: bestLRM, pefs: lrmPEFs.examples, count: 12)
printTopExamples("Top examples of D-NPEFF component \(bestD)", w: dDec.w, component: bestD, pefs: dPEFs.examples, count: 12)
