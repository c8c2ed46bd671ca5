module.exports = function colorize(text) {
  return "\u001b[32m" + text + "\u001b[0m";
};
