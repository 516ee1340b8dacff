// The SVG drawing of `report.html`: a fixed-size chart with axes, ticks, grid, lines, markers,
// bars and a legend, plus the number formatting and XML escaping the page shares.
import Foundation

/// One chart: a plot area with axes, ticks and grid, in a fixed-size SVG.
struct Chart {
    static let width = 590.0, height = 330.0
    static let left = 64.0, right = 18.0, top = 28.0, bottom = 50.0
    let name: String
    let xRange: ClosedRange<Double>
    let yRange: ClosedRange<Double>
    let xLabel: String
    let yLabel: String
    var logX = false
    private var body: [String] = []
    private var legendEntries: [(String, String, Bool)] = []

    init(name: String, xRange: ClosedRange<Double>, yRange: ClosedRange<Double>, xLabel: String, yLabel: String,
         logX: Bool = false) {
        self.name = name
        self.xRange = xRange.lowerBound < xRange.upperBound ? xRange : (xRange.lowerBound - 0.5)...(xRange.upperBound + 0.5)
        self.yRange = yRange.lowerBound < yRange.upperBound ? yRange : yRange.lowerBound...(yRange.lowerBound + 1)
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.logX = logX
    }

    var plotWidth: Double { Chart.width - Chart.left - Chart.right }
    var plotHeight: Double { Chart.height - Chart.top - Chart.bottom }

    func px(_ x: Double) -> Double {
        Chart.left + (x - xRange.lowerBound) / (xRange.upperBound - xRange.lowerBound) * plotWidth
    }

    func py(_ y: Double) -> Double {
        let clamped = min(max(y, yRange.lowerBound), yRange.upperBound)
        return Chart.top + (1 - (clamped - yRange.lowerBound) / (yRange.upperBound - yRange.lowerBound)) * plotHeight
    }

    /// A polyline through the finite points; `deduplicate` drops points that land on the same
    /// 0.5-pixel position as the previous kept one (keeps a long ROC small without changing it).
    mutating func line(series: String, xs: [Double], ys: [Double], color: String, dashed: Bool = false,
                       deduplicate: Bool = false, markPoints: Bool = true) {
        var points: [String] = []
        var last: (Double, Double)?
        for (x, y) in zip(xs, ys) where x.isFinite && y.isFinite {
            let p = ((px(x) * 2).rounded() / 2, (py(y) * 2).rounded() / 2)
            if deduplicate, let last, last == p { continue }
            last = p
            points.append("\(coordinate(p.0)),\(coordinate(p.1))")
        }
        let values = ys.map { "\($0)" }.joined(separator: " ")
        body.append("<polyline data-series=\"\(series)\" data-points=\"\(points.count)\" data-values=\"\(deduplicate ? "" : values)\" "
                    + "points=\"\(points.joined(separator: " "))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\""
                    + (dashed ? " stroke-dasharray=\"6 4\"" : "") + "/>")
        if markPoints && points.count <= 40 {
            for point in points {
                let xy = point.split(separator: ",")
                body.append("<circle cx=\"\(xy[0])\" cy=\"\(xy[1])\" r=\"2.5\" fill=\"\(color)\"/>")
            }
        }
    }

    /// Labelled marker dots; each carries `attributes` (data values).
    mutating func markers(series: String, points: [(x: Double, y: Double, attributes: String, label: String)], color: String) {
        for (index, point) in points.enumerated() {
            let x = px(point.x), y = py(point.y)
            body.append("<circle data-series=\"\(series)\" \(point.attributes) cx=\"\(coordinate(x))\" cy=\"\(coordinate(y))\" "
                        + "r=\"5\" fill=\"\(color)\" stroke=\"#fff\" stroke-width=\"1.5\"/>")
            // Below-right of the point (ROC curves and accuracies lie above-left of it), one row
            // further down per marker so neighbouring labels never overlap.
            let anchor = x > Chart.left + plotWidth * 0.7 ? "end" : "start"
            let dx = anchor == "end" ? -8.0 : 8.0
            let dy = y < Chart.top + plotHeight - 40 ? 18.0 + 16 * Double(index) : -10.0 - 16 * Double(index)
            body.append("<text x=\"\(coordinate(x + dx))\" y=\"\(coordinate(y + dy))\" font-size=\"12\" fill=\"\(color)\" "
                        + "text-anchor=\"\(anchor)\">\(escaped(point.label))</text>")
        }
    }

    /// Histogram bars of `counts / total` over bins starting at `lowerEdge(b)`; empty bins are skipped.
    mutating func bars(series: String, counts: [Int], total: Int, lowerEdge: (Int) -> Double, width: Double, color: String) {
        for (bin, count) in counts.enumerated() where count > 0 {
            let x0 = px(lowerEdge(bin)), x1 = px(lowerEdge(bin) + width)
            let y = py(Double(count) / Double(total)), base = py(yRange.lowerBound)
            body.append("<rect data-series=\"\(series)\" data-bin=\"\(bin)\" data-count=\"\(count)\" x=\"\(coordinate(x0))\" "
                        + "y=\"\(coordinate(y))\" width=\"\(coordinate(max(x1 - x0 - 0.5, 0.5)))\" "
                        + "height=\"\(coordinate(max(base - y, 0)))\" fill=\"\(color)\" fill-opacity=\"0.45\" stroke=\"\(color)\" stroke-width=\"0.6\"/>")
        }
    }

    /// A dashed vertical line at `x` (skipped when `x` is not finite or outside the range).
    mutating func verticalLine(at x: Double, attributes: String, label: String) {
        guard x.isFinite, xRange.contains(x) else {
            body.append("<g \(attributes) data-drawn=\"false\"/>")
            return
        }
        body.append("<line \(attributes) x1=\"\(coordinate(px(x)))\" y1=\"\(coordinate(Chart.top))\" x2=\"\(coordinate(px(x)))\" "
                    + "y2=\"\(coordinate(Chart.top + plotHeight))\" stroke=\"#333\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>")
        body.append("<text x=\"\(coordinate(px(x) + 5))\" y=\"\(coordinate(Chart.top + 14))\" font-size=\"12\" fill=\"#333\">\(escaped(label))</text>")
    }

    mutating func legend(_ entries: [(String, String, Bool)]) {
        legendEntries = entries
    }

    var svg: String {
        var parts = ["<svg xmlns=\"http://www.w3.org/2000/svg\" data-chart=\"\(name)\" width=\"\(Int(Chart.width))\" "
                     + "height=\"\(Int(Chart.height))\" viewBox=\"0 0 \(Int(Chart.width)) \(Int(Chart.height))\" role=\"img\">",
                     "<rect x=\"0\" y=\"0\" width=\"\(Int(Chart.width))\" height=\"\(Int(Chart.height))\" fill=\"#fff\"/>"]
        let x0 = Chart.left, x1 = Chart.left + plotWidth, y0 = Chart.top, y1 = Chart.top + plotHeight
        for tick in yTicks() {
            let y = py(tick)
            parts.append("<line x1=\"\(coordinate(x0))\" y1=\"\(coordinate(y))\" x2=\"\(coordinate(x1))\" y2=\"\(coordinate(y))\" stroke=\"#e6e6e6\"/>")
            parts.append("<text x=\"\(coordinate(x0 - 6))\" y=\"\(coordinate(y + 4))\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">\(tickLabel(tick, step: yStep))</text>")
        }
        for tick in xTicks() {
            let x = px(tick)
            parts.append("<line x1=\"\(coordinate(x))\" y1=\"\(coordinate(y0))\" x2=\"\(coordinate(x))\" y2=\"\(coordinate(y1))\" stroke=\"#e6e6e6\"/>")
            let label = logX ? decadeLabel(tick) : tickLabel(tick, step: xStep)
            parts.append("<text x=\"\(coordinate(x))\" y=\"\(coordinate(y1 + 16))\" font-size=\"11\" text-anchor=\"middle\" fill=\"#555\">\(label)</text>")
        }
        parts.append("<rect x=\"\(coordinate(x0))\" y=\"\(coordinate(y0))\" width=\"\(coordinate(plotWidth))\" height=\"\(coordinate(plotHeight))\" fill=\"none\" stroke=\"#999\"/>")
        parts.append(contentsOf: body)
        parts.append("<text x=\"\(coordinate(x0 + plotWidth / 2))\" y=\"\(coordinate(Chart.height - 10))\" font-size=\"13\" text-anchor=\"middle\" fill=\"#222\">\(escaped(xLabel))</text>")
        parts.append("<text transform=\"translate(16 \(coordinate(y0 + plotHeight / 2))) rotate(-90)\" font-size=\"13\" text-anchor=\"middle\" fill=\"#222\">\(escaped(yLabel))</text>")
        for (index, (text, color, dashed)) in legendEntries.enumerated() {
            let y = Chart.top - 10
            let x = x0 + 4 + Double(index) * plotWidth / Double(max(legendEntries.count, 1))
            parts.append("<line x1=\"\(coordinate(x))\" y1=\"\(coordinate(y - 4))\" x2=\"\(coordinate(x + 18))\" y2=\"\(coordinate(y - 4))\" stroke=\"\(color)\" stroke-width=\"3\""
                         + (dashed ? " stroke-dasharray=\"5 3\"" : "") + "/>")
            parts.append("<text x=\"\(coordinate(x + 22))\" y=\"\(coordinate(y))\" font-size=\"11\" fill=\"#333\">\(escaped(text))</text>")
        }
        parts.append("</svg>")
        return parts.joined(separator: "\n")
    }

    /// Epoch axes tick whole epochs only.
    private var xStep: Double {
        let step = niceStep(xRange.upperBound - xRange.lowerBound)
        return xLabel == "epoch" ? max(1, step) : step
    }
    private var yStep: Double { niceStep(yRange.upperBound - yRange.lowerBound) }

    private func xTicks() -> [Double] {
        if logX { return stride(from: xRange.lowerBound.rounded(.up), through: xRange.upperBound, by: 1).map { $0 } }
        return ticks(in: xRange, step: xStep)
    }

    private func yTicks() -> [Double] { ticks(in: yRange, step: yStep) }
}

/// A "nice" tick spacing (1, 2 or 5 × 10ᵏ) giving about five ticks over `span`.
func niceStep(_ span: Double) -> Double {
    guard span > 0, span.isFinite else { return 1 }
    let raw = span / 5
    let magnitude = pow(10, log10(raw).rounded(.down))
    let fraction = raw / magnitude
    return (fraction < 1.5 ? 1 : fraction < 3.5 ? 2 : fraction < 7.5 ? 5 : 10) * magnitude
}

func ticks(in range: ClosedRange<Double>, step: Double) -> [Double] {
    var result: [Double] = []
    var k = (range.lowerBound / step).rounded(.up)
    while k * step <= range.upperBound + step * 1e-9 {
        result.append(k * step)
        k += 1
    }
    return result
}

/// The smallest "nice" number ≥ `value` (1, 2, 2.5, 5 × 10ᵏ), 1 for non-positive input.
func niceCeiling(_ value: Double) -> Double {
    guard value > 0, value.isFinite else { return 1 }
    let magnitude = pow(10, log10(value).rounded(.down))
    for factor in [1.0, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10] where factor * magnitude >= value * 1.02 {
        return factor * magnitude
    }
    return 10 * magnitude
}

func tickLabel(_ value: Double, step: Double) -> String {
    let digits = max(0, Int((-log10(step)).rounded(.up)))
    return String(format: "%.\(min(digits, 6))f", abs(value) < step * 1e-9 ? 0 : value)
}

/// `10⁻³`-style label of a decade exponent.
func decadeLabel(_ exponent: Double) -> String {
    let e = Int(exponent.rounded())
    if e == 0 { return "1" }
    let superscripts: [Character: Character] = ["-": "⁻", "0": "⁰", "1": "¹", "2": "²", "3": "³", "4": "⁴",
                                                "5": "⁵", "6": "⁶", "7": "⁷", "8": "⁸", "9": "⁹"]
    return "10" + String(String(e).map { superscripts[$0] ?? $0 })
}

/// A pixel coordinate with one decimal.
func coordinate(_ value: Double) -> String { String(format: "%.1f", value) }

/// `text` with the five XML special characters escaped.
func escaped(_ text: String) -> String {
    var result = ""
    result.reserveCapacity(text.count)
    for character in text {
        switch character {
        case "&": result += "&amp;"
        case "<": result += "&lt;"
        case ">": result += "&gt;"
        case "\"": result += "&quot;"
        case "'": result += "&#39;"
        default: result.append(character)
        }
    }
    return result
}
