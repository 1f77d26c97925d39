# frozen_string_literal: true

# What Canvas LMS (Rails 6.1 on Rack 2.2) reads from one request: the
# parameters ActionDispatch builds, the method it routes on after
# Rack::MethodOverride, the host it believes it serves and the credential
# Canvas authenticates. Shared by the pipe oracle (oracle.rb) and the Puma
# stand-in (config.ru), so both report the same reading.
#
# The libraries are loaded as any Rails app loads them: nothing here parses
# parameters itself.

require "json"
require "stringio"
require "rack"
require "action_dispatch"
require "action_controller/metal/exceptions"
require "puma"
require "puma/puma_http11"

module RackParity
  NOOP = ->(_env) { [200, {}, []] }
  # Rails puts Rack::MethodOverride in every non-API app's middleware
  # stack, and Canvas runs it: a POST whose form or multipart body has a
  # _method of GET, HEAD, PUT, PATCH, DELETE or OPTIONS (or one of the
  # WebDAV verbs) is routed as that method.
  METHOD_OVERRIDE = Rack::MethodOverride.new(NOOP)

  module_function

  # read returns the reading of one Rack env as a JSON-ready Hash. A request
  # Rails or Rack refuses (a raise while reading parameters, the method or
  # the host) is reported as {"raised" => class name, "message" => ...}:
  # Canvas would answer it with an error and act on nothing.
  def read(env)
    env["rack.errors"] ||= StringIO.new
    original = env["REQUEST_METHOD"]
    begin
      METHOD_OVERRIDE.call(env)
      req = ActionDispatch::Request.new(env)
      params = req.params
      credential, source = credential(req, params)
      request_method, method, host, host_with_port = req.request_method, req.method, req.host, req.host_with_port
    rescue StandardError => e
      return { "raised" => e.class.name, "message" => message_text(e.message), "env" => env_summary(env) }
    end
    # Only Rails' and Rack's own work above counts as a refusal; a failure
    # below is a bug of this file and reaches the caller.
    {
      "method" => original,
      "request_method" => request_method, # after Rack::MethodOverride
      "original_method" => method,        # Rails' name for the method before it
      "overridden" => env.key?(Rack::RACK_METHODOVERRIDE_ORIGINAL_METHOD),
      "params" => plain(params),
      "host" => text(host),
      "host_with_port" => text(host_with_port),
      "credential" => plain(credential),
      "credential_source" => source,
      "env" => env_summary(env),
    }
  end

  # credential is Canvas's AuthenticationMethods.access_token: when the
  # Authorization header (Rails' request.authorization) is present and its
  # first word, as Ruby's split(" ", 2) cuts it, is exactly "Bearer", the
  # token is the rest of the header (nil for a bare "Bearer", and then the
  # parameter is not consulted); otherwise it is params["access_token"]
  # when present (which may be an Array or a Hash for bracketed names).
  def credential(req, params)
    auth = req.authorization
    if auth.present? && (parts = auth.split(" ", 2)) && parts[0] == "Bearer"
      [parts[1], "header"]
    else
      value = params["access_token"].presence
      [value, value.nil? ? nil : "params"]
    end
  end

  def env_summary(env)
    %w[REQUEST_METHOD REQUEST_URI QUERY_STRING CONTENT_TYPE CONTENT_LENGTH HTTP_HOST HTTP_X_FORWARDED_HOST SERVER_NAME SERVER_PORT]
      .each_with_object({}) { |k, h| h[k] = text(env[k].to_s) if env.key?(k) }
  end

  # plain turns parameters into JSON values: uploaded files become
  # {"__file__" => filename, "content_type" => type}, strings that are not
  # valid UTF-8 become {"__bytes__" => hex}.
  def plain(v)
    case v
    when Hash
      v.to_h.each_with_object({}) { |(k, x), h| h[key(k)] = plain(x) }
    when Array then v.map { |x| plain(x) }
    when String then text(v)
    when Symbol then text(v.to_s)
    when nil, true, false, Integer, Float then v
    when ActionDispatch::Http::UploadedFile
      { "__file__" => text(v.original_filename.to_s), "content_type" => text(v.content_type.to_s) }
    else { "__object__" => v.class.name }
    end
  end

  # message_text is an error message for people: always a string, with
  # bytes that are not UTF-8 replaced (the reading itself uses text).
  def message_text(m)
    m.to_s[0, 300].dup.force_encoding(Encoding::UTF_8).scrub("?")
  end

  def text(s)
    u = s.to_s.dup.force_encoding(Encoding::UTF_8)
    u.valid_encoding? ? u : { "__bytes__" => s.to_s.unpack1("H*") }
  end

  def key(k)
    t = text(k.to_s)
    t.is_a?(String) ? t : "__bytes__:" + t["__bytes__"]
  end

  # env_from_http builds the Rack env Puma 5.6 would build for a request
  # head (request line and header lines, ending with the empty line) and a
  # body: Puma's own HTTP parser makes REQUEST_METHOD, REQUEST_URI,
  # REQUEST_PATH, QUERY_STRING, CONTENT_TYPE, CONTENT_LENGTH and HTTP_*
  # (repeated headers joined with ", "); then, as Puma's server does,
  # SERVER_NAME and SERVER_PORT come from the Host header (cut at its first
  # ':' unless bracketed), PATH_INFO is REQUEST_PATH and rack.input holds
  # the body. Returns [env, nil] or [nil, refusal].
  def env_from_http(head, body)
    env = {}
    parser = Puma::HttpParser.new
    begin
      parser.execute(env, head, 0)
    rescue Puma::HttpParserError => e
      return [nil, { "raised" => e.class.name, "message" => "puma refused the request head" }]
    end
    return [nil, { "raised" => "Puma::HttpParserError", "message" => "incomplete request head" }] unless parser.finished?

    host = env["HTTP_HOST"]
    if host.nil?
      env["SERVER_NAME"], env["SERVER_PORT"] = "localhost", "80"
    elsif (i = host.rindex("]:"))
      env["SERVER_NAME"], env["SERVER_PORT"] = host[0, i + 1], host[i + 2..]
    elsif !host.start_with?("[") && (i = host.index(":"))
      env["SERVER_NAME"], env["SERVER_PORT"] = host[0, i], host[i + 1..]
    else
      env["SERVER_NAME"], env["SERVER_PORT"] = host, "80"
    end
    env["PATH_INFO"] = env["REQUEST_PATH"] || ""
    env["SCRIPT_NAME"] = ""
    env["QUERY_STRING"] ||= ""
    env["SERVER_PROTOCOL"] = env["HTTP_VERSION"] || "HTTP/1.1"
    env["REMOTE_ADDR"] = "127.0.0.1"
    env["rack.version"] = Rack::VERSION
    env["rack.url_scheme"] = "http"
    env["rack.input"] = StringIO.new(body.b)
    env["rack.errors"] = StringIO.new
    env["rack.multithread"] = false
    env["rack.multiprocess"] = false
    env["rack.run_once"] = false
    [env, nil]
  end
end
