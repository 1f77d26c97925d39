# frozen_string_literal: true

# The long-running oracle: reads requests from stdin and answers each with
# RackParity's reading on stdout. Both directions are frames of a 4-byte
# big-endian length followed by that many bytes of JSON. A request is
# {"head": base64 of the request line and header lines, "body": base64}.

require_relative "reading"
require "base64"

$stdin.binmode
$stdout.binmode

loop do
  size = $stdin.read(4)
  break if size.nil? || size.bytesize < 4

  msg = JSON.parse($stdin.read(size.unpack1("N")))
  answer =
    begin
      env, refused = RackParity.env_from_http(Base64.strict_decode64(msg["head"]), Base64.strict_decode64(msg["body"] || ""))
      refused || RackParity.read(env)
    rescue StandardError => e
      { "internal" => e.class.name, "message" => RackParity.message_text(e.message) }
    end
  out = JSON.generate(answer)
  $stdout.write([out.bytesize].pack("N"), out)
  $stdout.flush
end
