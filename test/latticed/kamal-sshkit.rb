# What Kamal does over SSH, with Debian's ruby-sshkit / ruby-net-ssh / ruby-net-scp:
# SSHKit's Netssh backend as root with Kamal's keepalive options, credentials Lattice
# ignores (net-ssh never needs a key here), 30 concurrent connection starts, execute,
# capture, test, upload! of a file, a pooled connection reused (after LATTICE_IDLE_S
# seconds idle, as between Kamal's deploy steps; Kamal's pool keeps idle connections 900 s),
# and a remote port forward with net-ssh (forward.remote, server-allocated port).
#
# Usage: ruby kamal-sshkit.rb HOST LOCAL_FILE REMOTE_PATH   (prints "ok" and the host key type)
# With LATTICE_NO_ED25519=1 the ed25519 gem cannot be loaded (as on a machine without
# it): net-ssh then negotiates an ECDSA or RSA host key.
if ENV["LATTICE_NO_ED25519"] == "1"
  module Kernel
    alias_method :lattice_orig_require, :require
    def require(name)
      raise LoadError, "cannot load such file -- #{name}" if name == "ed25519" || name.start_with?("ed25519/")
      lattice_orig_require(name)
    end
  end
end

require "sshkit"
require "sshkit/dsl"
include SSHKit::DSL

host, local, remote = ARGV
abort "usage: kamal-sshkit.rb HOST LOCAL_FILE REMOTE_PATH" unless host && local && remote

SSHKit.config.output_verbosity = Logger::WARN
# Kamal's default sshkit.pool_idle_timeout.
SSHKit::Backend::Netssh.pool.idle_timeout = 900
SSHKit::Backend::Netssh.configure do |ssh|
  ssh.connection_timeout = 20
  ssh.ssh_options = {
    user: "root",
    keepalive: true,
    keepalive_interval: 30,
    # Kamal users have keys; Lattice accepts whatever is offered (policy decides).
    auth_methods: %w[password],
    password: "ignored-by-lattice",
    non_interactive: true,
    verify_host_key: :never,
    logger: Logger.new($stderr, level: Logger::FATAL),
  }
end

on(["root@#{host}"]) do
  execute :true
  uid = capture(:id, "-u")
  raise "capture(id -u) = #{uid.inspect}" unless uid == "0"
  raise "test -d /tmp failed" unless test("[ -d /tmp ]")
  raise "test -d /nonexistent succeeded" if test("[ -d /nonexistent-lattice ]")
  upload! local, remote
  size = capture(:stat, "-c", "%s", remote)
  raise "uploaded size #{size} != #{File.size(local)}" unless size.to_i == File.size(local)
end

# 30 concurrent connection starts (each thread checks out its own pooled connection).
errors = Queue.new
threads = Array.new(30) do |i|
  Thread.new do
    SSHKit::Backend::Netssh.new(SSHKit::Host.new("root@#{host}")) do
      out = capture(:echo, "t#{i}")
      raise "thread #{i}: #{out.inspect}" unless out == "t#{i}"
    end.run
  rescue StandardError => e
    errors << e
  end
end
threads.each(&:join)
raise errors.pop unless errors.empty?

# The pooled connection is reused, also after sitting idle (nobody reads it meanwhile:
# net-ssh answers the server's keepalives only while its event loop runs).
conn_of = lambda do
  c = nil
  on(["root@#{host}"]) { c = capture(:echo, "$SSH_CONNECTION") }
  c
end
first = conn_of.call
sleep Integer(ENV.fetch("LATTICE_IDLE_S", "0"))
again = conn_of.call
raise "pooled connection not reused: #{first.inspect} then #{again.inspect}" unless !first.empty? && first == again

# A remote port forward (tcpip-forward with port 0): B's 127.0.0.1:<allocated> reaches an
# echo server on A's loopback.
echo = TCPServer.new("127.0.0.1", 0)
Thread.new do
  loop do
    c = echo.accept
    Thread.new(c) { |x| x.write(x.gets); x.close }
  end
end
token = "fwd-#{rand(1 << 40)}"
# net-ssh 7.0.1 prints stray "REMOTE ..." debug lines on stdout for forwarded connections.
require "stringio"
real_stdout = $stdout
$stdout = StringIO.new
Net::SSH.start(host, "root", password: "x", auth_methods: %w[password], non_interactive: true, verify_host_key: :never) do |s|
  rport = nil
  s.forward.remote(echo.addr[1], "127.0.0.1", 0, "127.0.0.1") { |p| rport = p }
  s.loop(0.1) { rport.nil? }
  raise "remote forward failed: #{rport.inspect}" unless rport.is_a?(Integer) && rport > 0
  got = s.exec!("timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/#{rport}; echo #{token} >&3; head -1 <&3'").to_s.strip
  raise "through the remote forward: #{got.inspect}" unless got == token
end
$stdout = real_stdout

kex = nil
Net::SSH.start(host, "root", password: "x", auth_methods: %w[password], non_interactive: true, verify_host_key: :never) do |s|
  kex = s.transport.algorithms.host_key
end
puts "ok #{kex}"
