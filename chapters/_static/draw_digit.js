/* Draw a digit: the book's trained CNN, run in plain JavaScript inside a static page.
 *
 * The model comes from `python -m mnist_cnn export-web` (mnist_cnn/export.py), loaded before
 * this file as window.MNIST_CNN_MODEL. Everything here mirrors the Python package:
 *   preprocess()  <->  mnist_cnn.preprocess_image  (crop, Pillow-LANCZOS to 20 px, centre of mass)
 *   forward()     <->  mnist_cnn.CNN.__call__ + softmax (SAME conv, activation, 2x2 pool, dense)
 * Arrays are flat, row-major, channels last (HWC), exactly like NHWC in JAX without the batch.
 * window.mnistCnn exposes both functions so the browser tests can compare them with Python.
 */
(function () {
  "use strict";

  // ---- Weights: base64 little-endian float16 -> Float32Array ----

  function halfToFloat(h) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const fraction = h & 0x3ff;
    if (exponent === 0) return sign * fraction * Math.pow(2, -24); // subnormal
    if (exponent === 31) return fraction ? NaN : sign * Infinity;
    return sign * (1 + fraction / 1024) * Math.pow(2, exponent - 15);
  }

  function decodeTensor(tensor) {
    const bytes = atob(tensor.data);
    const values = new Float32Array(bytes.length / 2);
    for (let i = 0; i < values.length; i++) {
      values[i] = halfToFloat(bytes.charCodeAt(2 * i) | (bytes.charCodeAt(2 * i + 1) << 8));
    }
    const size = tensor.shape.reduce((a, b) => a * b, 1);
    if (size !== values.length) throw new Error("weight size does not match its shape " + tensor.shape);
    return { shape: tensor.shape, values: values };
  }

  function loadModel(spec) {
    if (!spec || spec.format !== "mnist_cnn-web-v1") {
      throw new Error("not an mnist_cnn web model (run python -m mnist_cnn export-web)");
    }
    const layers = spec.layers.map(function (layer) {
      const out = Object.assign({}, layer);
      if (layer.kernel) {
        out.kernel = decodeTensor(layer.kernel);
        out.bias = decodeTensor(layer.bias);
      }
      return out;
    });
    return { layers: layers, mean: spec.input.mean, std: spec.input.std,
             params: spec.activation_params || {}, config: spec.config };
  }

  // ---- Forward pass ----

  function activation(name, params) {
    // The same functions as mnist_cnn.model.ACTIVATION_FNS (JAX's defaults).
    switch (name) {
      case "relu": return (x) => (x > 0 ? x : 0);
      case "sigmoid": return (x) => 1 / (1 + Math.exp(-x));
      case "tanh": return Math.tanh;
      case "leaky_relu": {
        const slope = params.negative_slope;
        return (x) => (x >= 0 ? x : slope * x);
      }
      case "gelu": {
        // jax.nn.gelu(approximate=True): the tanh approximation.
        const c = Math.sqrt(2 / Math.PI);
        return (x) => 0.5 * x * (1 + Math.tanh(c * (x + 0.044715 * x * x * x)));
      }
      default: throw new Error("unknown activation " + name);
    }
  }

  // SAME-padded cross-correlation, stride 1; input (h, w, cin), kernel HWIO (k, k, cin, cout).
  function conv2d(x, h, w, cin, kernel, bias) {
    const k = kernel.shape[0], cout = kernel.shape[3], K = kernel.values, pad = (k - 1) >> 1;
    const out = new Float64Array(h * w * cout);
    for (let y = 0; y < h; y++) {
      for (let xx = 0; xx < w; xx++) {
        const o = (y * w + xx) * cout;
        for (let c = 0; c < cout; c++) out[o + c] = bias.values[c];
        for (let dy = 0; dy < k; dy++) {
          const sy = y + dy - pad;
          if (sy < 0 || sy >= h) continue; // zero padding
          for (let dx = 0; dx < k; dx++) {
            const sx = xx + dx - pad;
            if (sx < 0 || sx >= w) continue;
            const i0 = (sy * w + sx) * cin, k0 = (dy * k + dx) * cin * cout;
            for (let ci = 0; ci < cin; ci++) {
              const v = x[i0 + ci];
              if (v === 0) continue;
              const kr = k0 + ci * cout;
              for (let c = 0; c < cout; c++) out[o + c] += v * K[kr + c];
            }
          }
        }
      }
    }
    return out;
  }

  // 2x2 pooling, stride 2; an odd last row or column is dropped (as model.pool2x2 reshapes).
  function pool2x2(x, h, w, c, kind) {
    const ho = h >> 1, wo = w >> 1, out = new Float64Array(ho * wo * c);
    for (let y = 0; y < ho; y++) {
      for (let xx = 0; xx < wo; xx++) {
        for (let ch = 0; ch < c; ch++) {
          const a = x[((2 * y) * w + 2 * xx) * c + ch], b = x[((2 * y) * w + 2 * xx + 1) * c + ch];
          const d = x[((2 * y + 1) * w + 2 * xx) * c + ch], e = x[((2 * y + 1) * w + 2 * xx + 1) * c + ch];
          out[(y * wo + xx) * c + ch] = kind === "max" ? Math.max(a, b, d, e) : (a + b + d + e) / 4;
        }
      }
    }
    return out;
  }

  // x (n_in) times kernel (n_in, n_out) plus bias.
  function dense(x, kernel, bias) {
    const nin = kernel.shape[0], nout = kernel.shape[1], K = kernel.values;
    if (x.length !== nin) throw new Error("dense layer expects " + nin + " inputs, got " + x.length);
    const out = Float64Array.from(bias.values);
    for (let i = 0; i < nin; i++) {
      const v = x[i];
      if (v === 0) continue;
      const row = i * nout;
      for (let j = 0; j < nout; j++) out[j] += v * K[row + j];
    }
    return out;
  }

  function softmax(logits) {
    const top = Math.max.apply(null, logits);
    const e = Array.from(logits, (v) => Math.exp(v - top));
    const total = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / total);
  }

  /* Run the CNN on one 28x28 image (784 numbers in [0, 1], row-major).
   * Returns {probabilities: [10], features: {name: {shape: [h, w, c], values}}}. */
  function forward(model, pixels) {
    if (pixels.length !== 784) throw new Error("forward expects 784 pixels, got " + pixels.length);
    let x = Float64Array.from(pixels, (v) => (v - model.mean) / model.std);
    let h = 28, w = 28, c = 1;
    const features = { input: { shape: [h, w, c], values: x } };
    for (const layer of model.layers) {
      if (layer.type === "conv") {
        x = conv2d(x, h, w, c, layer.kernel, layer.bias);
        c = layer.kernel.shape[3];
      } else if (layer.type === "activation") {
        const f = activation(layer.function, model.params);
        x = x.map(f);
      } else if (layer.type === "pool") {
        x = pool2x2(x, h, w, c, layer.kind);
        h >>= 1; w >>= 1;
      } else if (layer.type === "flatten") {
        h = 1; w = 1; c = x.length; // HWC order is already the flat order
      } else if (layer.type === "dense") {
        x = dense(x, layer.kernel, layer.bias);
        c = x.length;
      } else if (layer.type === "softmax") {
        x = softmax(x);
      } else {
        throw new Error("unknown layer type " + layer.type);
      }
      features[layer.name] = { shape: [h, w, c], values: x };
    }
    return { probabilities: Array.from(x), features: features };
  }

  // ---- Preprocessing, as mnist_cnn.preprocess_image ----

  // Python's round(): halves go to the even neighbour.
  function roundHalfEven(v) {
    const f = Math.floor(v), diff = v - f;
    if (diff > 0.5) return f + 1;
    if (diff < 0.5) return f;
    return f % 2 === 0 ? f : f + 1;
  }

  function median(values) {
    const s = Float64Array.from(values).sort();
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  }

  function lanczos(x) {
    const sinc = (t) => (t === 0 ? 1 : Math.sin(t * Math.PI) / (t * Math.PI));
    return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0;
  }

  /* Resampling coefficients for one axis, as Pillow's precompute_coeffs (Resample.c):
   * when shrinking, the filter is stretched by the scale, which antialiases. */
  function coefficients(inSize, outSize) {
    const scale = inSize / outSize, filterscale = Math.max(scale, 1), support = 3 * filterscale;
    const rows = [];
    for (let xx = 0; xx < outSize; xx++) {
      const center = (xx + 0.5) * scale;
      const xmin = Math.max(0, Math.trunc(center - support + 0.5));
      const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
      const weights = [];
      let total = 0;
      for (let x = 0; x < xmax; x++) {
        const wgt = lanczos((x + xmin - center + 0.5) / filterscale);
        weights.push(wgt);
        total += wgt;
      }
      rows.push({ start: xmin, weights: total !== 0 ? weights.map((v) => v / total) : weights });
    }
    return rows;
  }

  /* Pillow's Image.resize(size, LANCZOS) on a float32 ("F") image: a horizontal pass, then a
   * vertical one, each rounded to float32 as Pillow stores it. img: (h, w) flat. */
  function resizeLanczos(img, h, w, outH, outW) {
    if (outH === h && outW === w) return Float32Array.from(img); // Pillow returns a copy
    let cur = img, curW = w;
    if (outW !== w) {
      const cols = coefficients(w, outW), tmp = new Float32Array(h * outW);
      for (let y = 0; y < h; y++) {
        for (let xx = 0; xx < outW; xx++) {
          const { start, weights } = cols[xx];
          let s = 0;
          for (let i = 0; i < weights.length; i++) s += cur[y * curW + start + i] * weights[i];
          tmp[y * outW + xx] = s;
        }
      }
      cur = tmp; curW = outW;
    }
    if (outH !== h) {
      const rows = coefficients(h, outH), tmp = new Float32Array(outH * curW);
      for (let yy = 0; yy < outH; yy++) {
        const { start, weights } = rows[yy];
        for (let xx = 0; xx < curW; xx++) {
          let s = 0;
          for (let i = 0; i < weights.length; i++) s += cur[(start + i) * curW + xx] * weights[i];
          tmp[yy * curW + xx] = s;
        }
      }
      cur = tmp;
    }
    return Float32Array.from(cur);
  }

  /* grey: h*w values in [0, 1], row-major. Returns {image: Float32Array(784), box}, or null
   * for a blank image (preprocess_image raises ValueError there). */
  function preprocess(grey, h, w) {
    grey = Float32Array.from(grey);
    if (grey.length !== h * w) throw new Error("preprocess expects " + h * w + " pixels");
    // Light background: invert, so the digit is light on dark like MNIST.
    const border = [];
    for (let x = 0; x < w; x++) border.push(grey[x]);
    for (let x = 0; x < w; x++) border.push(grey[(h - 1) * w + x]);
    for (let y = 0; y < h; y++) border.push(grey[y * w]);
    for (let y = 0; y < h; y++) border.push(grey[y * w + w - 1]);
    if (median(border) > 0.5) grey = grey.map((v) => Math.fround(1 - v));
    let top = h, bottom = -1, left = w, right = -1;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (grey[y * w + x] > 0.1) {
          if (y < top) top = y;
          if (y > bottom) bottom = y;
          if (x < left) left = x;
          if (x > right) right = x;
        }
      }
    }
    if (bottom < 0) return null;
    const ch = bottom - top + 1, cw = right - left + 1, crop = new Float32Array(ch * cw);
    for (let y = 0; y < ch; y++) {
      for (let x = 0; x < cw; x++) crop[y * cw + x] = grey[(top + y) * w + left + x];
    }
    const scale = 20 / Math.max(ch, cw);
    const sw = Math.max(1, roundHalfEven(cw * scale)), sh = Math.max(1, roundHalfEven(ch * scale));
    const small = resizeLanczos(crop, ch, cw, sh, sw).map((v) => Math.min(1, Math.max(0, v)));
    // Centre of mass to the centre of 28x28 (MNIST's recipe).
    let total = 0, my = 0, mx = 0;
    for (let y = 0; y < sh; y++) {
      for (let x = 0; x < sw; x++) {
        const v = small[y * sw + x];
        total += v; my += y * v; mx += x * v;
      }
    }
    const oy = Math.min(Math.max(roundHalfEven(14 - my / total), 0), 28 - sh);
    const ox = Math.min(Math.max(roundHalfEven(14 - mx / total), 0), 28 - sw);
    const image = new Float32Array(784);
    for (let y = 0; y < sh; y++) {
      for (let x = 0; x < sw; x++) image[(oy + y) * 28 + ox + x] = small[y * sw + x];
    }
    return { image: image, box: { top: top, left: left, height: ch, width: cw } };
  }

  // ---- The panel ----

  const api = { forward: null, preprocess: preprocess, model: null, error: null };
  window.mnistCnn = api;

  // The panel's visible text in the page's language (<html lang>): the Chinese edition
  // (zh_CN/) is built from the same page, whose HTML block Sphinx does not translate.
  const TEXT = {
    en: {
      clear: "Clear",
      loading: "Loading the model…",
      drawingArea: "Drawing area: draw one digit here",
      probabilities: "Class probabilities",
      sees: "What the network sees (28×28):",
      maps: "The feature maps of the first layer, after the activation:",
      broken: (err) => "The model could not be loaded: " + err,
      model: (c) => "Model: " + c.conv_channels.length + " conv layers " +
        JSON.stringify(c.conv_channels) + ", " + c.activation + ", " + c.pool +
        " pooling, dense " + JSON.stringify(c.dense) + ".",
      mapTitle: (k) => "feature map " + k + " of the first layer (after the activation)",
      verdict: (d, p) => "The network reads a " + d + " (" + p + "%).",
      empty: "Draw a digit in the black square.",
    },
    zh: {
      clear: "清除",
      loading: "正在加载模型…",
      drawingArea: "书写区域：在这里写一个数字",
      probabilities: "各类别的概率",
      sees: "网络看到的图像（28×28）：",
      maps: "第一层经过激活函数后的特征图：",
      broken: (err) => "模型无法加载：" + err,
      model: (c) => "模型：" + c.conv_channels.length + " 个卷积层 " +
        JSON.stringify(c.conv_channels) + "，激活函数 " + c.activation + "，" +
        (c.pool === "max" ? "最大池化" : "平均池化") + "，全连接层 " +
        JSON.stringify(c.dense) + "。",
      mapTitle: (k) => "第一层的第 " + k + " 个特征图（激活后）",
      verdict: (d, p) => "网络认为这是 " + d + "（" + p + "%）。",
      empty: "请在黑色方框里写一个数字。",
    },
  };
  const text = /^zh\b/i.test(document.documentElement.lang || "") ? TEXT.zh : TEXT.en;

  function translatePanel(panel) {
    panel.querySelector(".dd-clear").textContent = text.clear;
    panel.querySelector(".dd-status").textContent = text.loading;
    panel.querySelector(".dd-canvas").setAttribute("aria-label", text.drawingArea);
    panel.querySelector(".dd-bars").setAttribute("aria-label", text.probabilities);
    const notes = panel.querySelectorAll(".dd-results > p");
    if (notes.length === 2) {
      notes[0].textContent = text.sees;
      notes[1].textContent = text.maps;
    }
  }

  function drawMap(canvas, values, side, channels, channel, lo, hi) {
    const ctx = canvas.getContext("2d"), img = ctx.createImageData(side, side);
    const range = hi - lo || 1;
    for (let i = 0; i < side * side; i++) {
      const v = Math.round(255 * (values[i * channels + channel] - lo) / range);
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  function setUp(panel) {
    translatePanel(panel);
    const canvas = panel.querySelector(".dd-canvas");
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    const preview = panel.querySelector(".dd-preview");
    const bars = panel.querySelector(".dd-bars");
    const mapsBox = panel.querySelector(".dd-maps");
    const verdict = panel.querySelector(".dd-verdict");
    const status = panel.querySelector(".dd-status");

    let model;
    try {
      model = loadModel(window.MNIST_CNN_MODEL);
    } catch (err) {
      api.error = String(err && err.message || err);
      status.textContent = text.broken(api.error);
      panel.classList.add("dd-broken");
      return;
    }
    api.model = model;
    api.forward = (pixels) => forward(model, pixels);
    api.predict = (pixels) => forward(model, pixels).probabilities;
    status.textContent = text.model(model.config);

    const barRows = [];
    for (let d = 0; d < 10; d++) {
      const row = document.createElement("div");
      row.className = "dd-bar-row";
      row.innerHTML = '<span class="dd-digit">' + d + '</span><span class="dd-track">' +
        '<span class="dd-bar"></span></span><span class="dd-value"></span>';
      bars.appendChild(row);
      barRows.push({ row: row, bar: row.querySelector(".dd-bar"), value: row.querySelector(".dd-value") });
    }
    const conv1 = model.layers.find((l) => l.type === "conv");
    const nMaps = conv1.kernel.shape[3], maps = [];
    for (let c = 0; c < nMaps; c++) {
      const m = document.createElement("canvas");
      m.width = m.height = 28;
      m.className = "dd-map";
      m.title = text.mapTitle(c + 1);
      mapsBox.appendChild(m);
      maps.push(m);
    }

    function clearPad() {
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
    }

    function show(result) {
      const probs = result ? result.probabilities : null;
      const best = probs ? probs.indexOf(Math.max.apply(null, probs)) : -1;
      barRows.forEach(function (r, d) {
        const p = probs ? probs[d] : 0;
        r.bar.style.width = (100 * p).toFixed(1) + "%";
        r.row.dataset.probability = p.toFixed(6);
        r.value.textContent = probs ? (100 * p).toFixed(1) + "%" : "";
        r.row.classList.toggle("dd-best", d === best);
      });
      verdict.textContent = probs ? text.verdict(best, (100 * probs[best]).toFixed(1))
        : text.empty;
      panel.dataset.prediction = probs ? String(best) : "";
      const pctx = preview.getContext("2d");
      if (!result) {
        pctx.fillStyle = "#000";
        pctx.fillRect(0, 0, 28, 28);
        maps.forEach(function (m) { m.getContext("2d").clearRect(0, 0, 28, 28); });
        return;
      }
      const input = result.pixels;
      drawMap(preview, input, 28, 1, 0, 0, 1);
      const act = result.features.act1;
      let lo = Infinity, hi = -Infinity;
      for (const v of act.values) { if (v < lo) lo = v; if (v > hi) hi = v; }
      maps.forEach(function (m, c) { drawMap(m, act.values, 28, nMaps, c, lo, hi); });
    }

    function classify() {
      const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      const grey = new Float32Array(canvas.width * canvas.height);
      for (let i = 0; i < grey.length; i++) {
        grey[i] = (0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2]) / 255;
      }
      const prepared = preprocess(grey, canvas.height, canvas.width);
      if (!prepared) { show(null); return; }
      const result = forward(model, prepared.image);
      result.pixels = prepared.image;
      show(result);
    }

    // Pointer events cover the mouse, a finger and a pen alike.
    let drawing = false, last = null, pending = false;
    function point(ev) {
      const r = canvas.getBoundingClientRect();
      return { x: (ev.clientX - r.left) * canvas.width / r.width,
               y: (ev.clientY - r.top) * canvas.height / r.height };
    }
    function scheduleClassify() {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () { pending = false; classify(); });
    }
    canvas.addEventListener("pointerdown", function (ev) {
      ev.preventDefault();
      canvas.setPointerCapture(ev.pointerId);
      drawing = true;
      last = point(ev);
      ctx.beginPath();
      ctx.arc(last.x, last.y, ctx.lineWidth / 2, 0, 2 * Math.PI);
      ctx.fillStyle = "#fff";
      ctx.fill();
      scheduleClassify();
    });
    canvas.addEventListener("pointermove", function (ev) {
      if (!drawing) return;
      ev.preventDefault();
      const p = point(ev);
      ctx.beginPath();
      ctx.moveTo(last.x, last.y);
      ctx.lineTo(p.x, p.y);
      ctx.stroke();
      last = p;
      scheduleClassify();
    });
    function stop() {
      if (!drawing) return;
      drawing = false;
      classify(); // the final drawing is always classified, whatever the frame timing
    }
    canvas.addEventListener("pointerup", stop);
    canvas.addEventListener("pointercancel", stop);

    panel.querySelector(".dd-clear").addEventListener("click", function () {
      clearPad();
      show(null);
    });

    ctx.lineWidth = 20; // about 2 MNIST pixels once the digit is scaled to 20 px high
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#fff";
    clearPad();
    show(null);
    panel.classList.add("dd-ready");
  }

  function init() {
    document.querySelectorAll(".dd-panel").forEach(setUp);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
