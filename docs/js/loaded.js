// Marks the page once every image has loaded or failed: <body data-images-loaded="k/n"> (k loaded of n), read by
// the test suite's headless Chromium (tests/e2e/test_docs.py).
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", loaded + "/" + images.length);
});
