# rdns-scorer plugin for SpamAssassin 4.0: asks the rdns-scorer service about the
# connecting client (first untrusted relay) and turns its RL_* symbols into rule hits.
#
# Loaded by rdns_scorer.cf; see docs/spamassassin.md in the rdns-scorer repository.
#
# Guarantees:
# - one request per message, with a hard overall deadline (rdns_scorer_timeout) across
#   connect, send and receive and across every configured URL (on the monotonic clock);
# - rdns_scorer_url takes IP addresses only: a host name is a config error, since its
#   lookup (getaddrinfo) would block outside that deadline, for as long as the resolver
#   takes, on every message;
# - fail-open: any failure gives no RL_* hit but RL_SCORER_FAIL (score ~0) with the reason;
# - only names matching ^RL_[A-Z0-9_]+$ (and not the plugin's own RL_SCORER_*) can hit,
#   with scores clamped to +-20, so the service can never trigger another rule;
# - an admin's own "score RL_X n" line wins over the service's score; 0 disables RL_X;
# - a circuit breaker per URL (in this process): a URL that hung
#   rdns_scorer_holddown_after times in a row is not asked again for
#   rdns_scorer_holddown seconds, then one message asks it again (a probe that hangs
#   holds it down again at once), so a hung or unreachable service delays a message
#   or two per hold-down, not every one, and one slow reply holds nothing down;
# - under -L (local tests only) no request is made (the rules carry "tflags net").

package Mail::SpamAssassin::Plugin::RdnsScorer;

use strict;
use warnings;
use Errno qw(EINPROGRESS EWOULDBLOCK EAGAIN EINTR EISCONN);
use IO::Socket::IP;
use Socket qw(AF_INET AF_INET6 AI_NUMERICHOST AI_NUMERICSERV inet_pton);
use B ();
use JSON::PP ();
use Time::HiRes ();

use Mail::SpamAssassin::Constants qw(:ip);
use Mail::SpamAssassin::Plugin;
use Mail::SpamAssassin::Logger;

our @ISA     = qw(Mail::SpamAssassin::Plugin);
our $VERSION = '0.1.0';

use constant DEFAULT_URL  => 'http://127.0.0.1:11340/v1/check';
use constant SCORE_LIMIT  => 20;       # service scores are clamped to +-SCORE_LIMIT
use constant MIN_SCORE    => 0.001;    # got_hit ignores 0: zero-weight hits use this
use constant MAX_REPLY    => 262144;   # bytes; a longer reply is a failure
use constant MAX_SYMBOLS  => 64;
use constant MAX_OPTIONS  => 16;
use constant MAX_OPTION   => 300;      # characters per option in the report
# Characters of evidence per message, all symbols together: 64 symbols of 16 options
# of 300 would make a report header of ~300 KB (MTAs cut or refuse headers far
# shorter; Postfix keeps 100 KB). A real reply has one or two KB.
use constant MAX_EVIDENCE => 8192;
use constant MAX_DEPTH    => 16;       # JSON nesting; a reply nests 4 deep
use constant SMTP_LINE    => 512;      # octets of a command line, RFC 5321 section 4.5.3.1.4
# The largest score the service can send: it refuses weights beyond 2^53 (MAX_NUMBER in
# scorer/config.py; a test keeps them equal, as the rspamd plugin's MAX_SCORE). A larger
# one, or an infinite one (1e400), is no reply of the service's.
use constant MAX_SCORE    => 9007199254740992;
use constant MAX_FIELD    => 1024;     # characters per request field: what the service reads
# One UTF-8 character as RFC 3629 section 4 spells it (UTF8-char): no overlong form, no
# surrogate (U+D800..U+DFFF), nothing past U+10FFFF; what Python's UTF-8 decoder, the
# service's, takes as one. Perl's own utf8::decode takes surrogates and more.
use constant UTF8_CHAR    => qr/[\x00-\x7F]|[\xC2-\xDF][\x80-\xBF]|\xE0[\xA0-\xBF][\x80-\xBF]
  |[\xE1-\xEC\xEE\xEF][\x80-\xBF]{2}|\xED[\x80-\x9F][\x80-\xBF]|\xF0[\x90-\xBF][\x80-\xBF]{2}
  |[\xF1-\xF3][\x80-\xBF]{3}|\xF4[\x80-\x8F][\x80-\xBF]{2}/x;
# U+DC80..U+DCFF in Perl's UTF-8 (ED B2 80 .. ED B3 BF) => its JSON escape, "\udc80" ..
# "\udcff" (_json).
our %SURROGATE_ESCAPES = map {
  my $octets = chr(0xDC00 + $_);
  utf8::encode($octets);
  ($octets => sprintf('\\u%04x', 0xDC00 + $_));
} 0x80 .. 0xFF;
# Bytes of request body at most: the smallest [server] max_body_bytes the service takes
# (MIN_BODY_BYTES in scorer/config.py), so no body is refused with a 413 (_fitted_body).
use constant MAX_BODY     => 8192;
use constant NAME_RE      => qr/^(RL_[A-Z0-9_]{1,60})\z/;    # \z: "$" lets a final newline through
use constant TIMEOUT_ADVISED => 1;    # seconds; a lower rdns_scorer_timeout is warned about
use constant HOLDDOWN_AFTER  => 2;    # rdns_scorer_holddown_after's default
# A timeout is a hang only when the call had (nearly) the time planned for it, as in the
# rspamd plugin: at least this share of it (_had_its_time).
use constant HUNG_SHARE      => 0.9;
# The 4xx statuses another instance may not give, so the next URL is asked within the
# deadline as after a 5xx (any other 4xx is the request's fault, which every instance
# shares), as the rspamd plugin's RETRIED_4XX. 401 and 403: the token is each
# instance's, and while it is being changed on several one may not know yet what the
# others take. 408: that instance gave up on the connection (RFC 9110 section 15.5.9:
# the client may repeat the request). 421: sent to an instance that will not answer it
# (section 15.5.20: may be retried on another connection). 429: that instance is
# overloaded, as with its 503 (RFC 6585 section 4).
use constant RETRIED_4XX => { map { ($_ => 1) } 401, 403, 408, 421, 429 };

# Received lines (each on one line, a space at either end; see _received_lines).
# An SMTP handover: "with" SMTP or ESMTP (RFC 5321 section 4.4) or one of their RFC 3848
# and RFC 6531 types (ESMTPA, ESMTPS, ESMTPSA, UTF8SMTP...; qmail's UTF8ESMTPS), not a
# local one (local, LMTP, IMAP, HTTP).
use constant SMTP_WITH   => qr/ with (?:UTF8)?E?SMTP[AS]*[\s;]/i;
# qmail's and qpsmtpd's "from REMOTEHOST (HELO NAME) (INFO@ADDRESS) by".
use constant QMAIL_FROM  => qr/^ from (\S+) \((?:HELO|EHLO) ([^()\s]+)\) \((?:[^()\s]*\@)?(${\ IP_ADDRESS()})\) by /i;
use constant EXCHANGE_BY => qr/ with Microsoft SMTP Server\b/i;
# Postfix's own line: "from HELO (NAME [ADDRESS]) by HOST (Postfix) with", NAME "unknown"
# where it had no forward-confirmed one, the address "IPv6:..." for IPv6, and its TLS
# comments ("(using TLS... (256/256 bits) ...)", "(No client certificate requested)")
# before "by". Postfix writes each space, parenthesis, '<', '>', '@', ';', '"' and '\' of
# a HELO as '?': a client cannot write that shape, a recipient after it cannot move it.
# SpamAssassin's IP_ADDRESS takes an "IPv6:" tag in, which the address sent leaves out.
use constant POSTFIX_FROM => qr/^ from (\S+) \((\S+) \[(?:IPv6:)?((?!IPv6:)${\ IP_ADDRESS()})\]\)(?: \((?:[^()]|\([^()]*\))*\))* by \S+ \(Postfix\) with /i;
# Where a line labels the HELO: Exim's "helo=NAME", qmail's "(HELO NAME)", qpsmtpd's
# "(EHLO NAME)".
use constant HELO_LABEL  => qr/[\s(](?:helo=|(?:HELO|EHLO) )/i;
# Exim's own line: "from [ADDRESS] (helo=NAME)" or "from RDNS ([ADDRESS] helo=NAME)" (cPanel's
# "(port=N helo=NAME)"), with " ident=ID" after NAME where it asked RFC 1413, then " by
# HOST with PROTO ... (Exim VERSION)". A HELO it took as junk (helo_accept_junk_hosts, "*"
# on cPanel) stands there whole, to the ") by" (_helo_as_sent); where one has a space in
# it, SpamAssassin's $helo is its first word. Anchored at the start: one place to try.
use constant EXIM_LINE   => qr/\(Exim [^)]*\)/;
use constant EXIM_HELO   => qr/^ from \S+ \((?:[^()\s]+ )*?helo=/i;

sub new {
  my ($class, $mailsa) = @_;
  my $self = $class->SUPER::new($mailsa);
  bless($self, $class);
  $self->register_eval_rule('check_rl_scorer', $Mail::SpamAssassin::Conf::TYPE_HEAD_EVALS);
  $self->register_eval_rule('check_rl_scorer_ok', $Mail::SpamAssassin::Conf::TYPE_HEAD_EVALS);
  $self->set_config($mailsa->{conf});
  return $self;
}

# --------------------------------------------------------------------------------------
# Configuration

sub set_config {
  my ($self, $conf) = @_;
  my @cmds;

  # rdns_scorer_url URL [URL ...]: each line replaces the list; tried in order.
  push(@cmds, {
    setting  => 'rdns_scorer_url',
    is_admin => 1,
    default  => [DEFAULT_URL],
    type     => $Mail::SpamAssassin::Conf::CONF_TYPE_STRINGLIST,
    code     => sub {
      my ($conf, $key, $value, $line) = @_;
      return $Mail::SpamAssassin::Conf::MISSING_REQUIRED_VALUE
        if !defined $value || $value !~ /\S/;
      my @urls;
      foreach my $url (split(/\s+/, $value)) {
        next if $url eq '';
        if (!_parse_url($url)) {
          # The parser's own error names only the line: say what is wrong with it.
          $conf->{parser}->lint_warn("config: rdns_scorer_url: $url: " . _url_problem($url),
            undef, 0);
          return $Mail::SpamAssassin::Conf::INVALID_VALUE;
        }
        push(@urls, $url);
      }
      $conf->{rdns_scorer_url} = \@urls;
      return;
    },
  });

  # rdns_scorer_timeout SECONDS: hard overall deadline for the whole call (default 1).
  push(@cmds, _seconds_command('rdns_scorer_timeout', 1, 1, 60, \&_timeout_advice));

  # rdns_scorer_holddown SECONDS: a URL that hung rdns_scorer_holddown_after times in
  # a row is not asked again for this long (default 10; 0: always ask).
  push(@cmds, _seconds_command('rdns_scorer_holddown', 10, 0, 3600));

  # rdns_scorer_holddown_after N: hangs in a row before a URL is held down (default 2;
  # 1: at the first). One slow reply (a pause of the service's, one slow resolver
  # answer) held a lone URL down for the whole hold-down, every message meanwhile
  # unscored, as it did the rspamd plugin's (its holddown_after).
  push(@cmds, {
    setting  => 'rdns_scorer_holddown_after',
    is_admin => 1,
    default  => HOLDDOWN_AFTER,
    type     => $Mail::SpamAssassin::Conf::CONF_TYPE_NUMERIC,
    code     => sub {
      my ($conf, $key, $value, $line) = @_;
      return $Mail::SpamAssassin::Conf::MISSING_REQUIRED_VALUE
        if !defined $value || $value eq '';
      # A count: "1.5", "0" or "-1" would be no number of hangs (the rspamd plugin
      # refuses them too); the setting keeps its earlier value.
      if ($value !~ /^[0-9]{1,9}\z/ || $value < 1) {
        $conf->{parser}->lint_warn("config: invalid '$key' value in "
          . _where($conf->{parser}) . ": '$value' is not a whole number of 1 or more",
          undef, 1);
        return;
      }
      $conf->{$key} = $value + 0;
      return;
    },
  });

  # rdns_scorer_token TOKEN: sent as "Authorization: Bearer TOKEN" (default: none).
  push(@cmds, {
    setting  => 'rdns_scorer_token',
    is_admin => 1,
    default  => '',
    type     => $Mail::SpamAssassin::Conf::CONF_TYPE_STRING,
    code     => sub {
      my ($conf, $key, $value, $line) = @_;
      $value = '' if !defined $value;
      # RFC 6750 section 2.1's b64token, as the service's [server] token must be (and the
      # rspamd plugin's): any other token is one the service can never take.
      if ($value !~ /^((?:[A-Za-z0-9\-._~+\/]+=*)?)$/) {
        # INVALID_VALUE would have the parser quote the whole line, the secret with it,
        # into lint's output and (spamd) the log: the same error, without the value.
        # The token stays as it was, as with INVALID_VALUE.
        $conf->{parser}->lint_warn("config: invalid '$key' value in "
          . _where($conf->{parser}) . ": a bearer token "
          . "only, letters, digits and -._~+/ then = padding, as the service's [server] "
          . "token (the value is not shown)", undef, 1);
        return;
      }
      $conf->{rdns_scorer_token} = $1;
      return;
    },
  });

  $conf->{parser}->register_commands(\@cmds);
}

# Where the parser is reading, for an error of our own: "FILE (line N)", as its own
# errors say it.
sub _where {
  my ($parser) = @_;
  my $file = $parser->{currentfile} // '(no file)';
  return defined $parser->{linenum} && defined $parser->{linenum}->{$file}
    ? "$file (line $parser->{linenum}->{$file})" : $file;
}

# An admin setting of seconds, read as SpamAssassin reads its own durations (time_limit,
# bayes_token_ttl: CONF_TYPE_DURATION), so it is written the same way: a number with an
# optional unit, s, m, h, d or w ("1.5", "1.5s", "10m"). Above 0 when $positive (else 0
# too), at most $ceiling seconds; a value out of that range or not a duration is an
# error that says which values are, and leaves the setting as it was. $advice, if given,
# may warn about a valid value.
sub _seconds_command {
  my ($setting, $default, $positive, $ceiling, $advice) = @_;
  my $range = ($positive ? 'above 0' : '0') . " to $ceiling seconds";
  return {
    setting  => $setting,
    is_admin => 1,
    default  => $default,
    type     => $Mail::SpamAssassin::Conf::CONF_TYPE_DURATION,
    code     => sub {
      my ($conf, $key, $value, $line) = @_;
      return $Mail::SpamAssassin::Conf::MISSING_REQUIRED_VALUE
        if !defined $value || $value eq '';
      my $previous = $conf->{$setting};
      my $status   = Mail::SpamAssassin::Conf::Parser::set_duration_value($conf, $key, $value);
      my $problem;
      if (defined $status && $status eq $Mail::SpamAssassin::Conf::INVALID_VALUE) {
        $problem = "'$value' is no duration: seconds, optionally with a unit "
          . "(1.5, 1.5s, 10m), $range";
      } elsif (($positive && $conf->{$setting} <= 0) || $conf->{$setting} > $ceiling) {
        $problem = "$value is out of range: $range";
      }
      if (defined $problem) {
        $conf->{$setting} = $previous;
        $conf->{parser}->lint_warn("config: invalid '$key' value in "
          . _where($conf->{parser}) . ": $problem", undef, 1);
        return;
      }
      $advice->($conf, $conf->{$setting}) if $advice;
      return;
    },
  };
}

# The service answers by its [dns] request_deadline (0.8 s by default) whatever its
# lookups do, plus HTTP overhead. A shorter timeout gives up on exactly the messages
# whose DNS is slow, and such timeouts in a row hold the URL down for
# rdns_scorer_holddown, so the messages after them go unscored too. A warning, not an error: a service with a lower
# request_deadline can have a lower timeout.
sub _timeout_advice {
  my ($conf, $seconds) = @_;
  return if $seconds >= TIMEOUT_ADVISED;
  $conf->{parser}->lint_warn("config: rdns_scorer_timeout $seconds is under "
    . TIMEOUT_ADVISED . " s: the service may take its [dns] request_deadline (0.8 s by "
    . "default) plus HTTP overhead to answer, so a message with slow DNS would time out "
    . "and, a few in a row, hold the URL down for rdns_scorer_holddown; keep it above "
    . "request_deadline + 0.2 s (fine if you lowered request_deadline to match)", undef, 0);
  return;
}

# "http://address[:port][/path]", the address IPv4 or [IPv6]. Returns (address, port,
# path) or (). Without a path, or with "/" alone, the service's check path:
# "http://127.0.0.1:11340" and "http://127.0.0.1:11340/" would otherwise ask "/", where
# the service serves nothing, and get a 404 for every message. No host names: resolving
# one (getaddrinfo) blocks outside the deadline, for as long as the resolver takes, and
# a failed lookup ("Temporary failure in name resolution") is no timeout, so no
# hold-down would spare the next message that wait.
sub _parse_url {
  my ($url) = @_;
  return if $url !~ m{^http://(\[[0-9A-Fa-f:.]+\]|[0-9.]+)(?::(\d{1,5}))?(/[\x21-\x7e]*)?$};
  my ($host, $port, $path) = ($1, $2 // 80, $3 // '/');
  $path = '/v1/check' if $path eq '/';
  return if $port < 1 || $port > 65535;
  my $family = $host =~ s/^\[(.*)\]$/$1/ ? AF_INET6 : AF_INET;
  return if !inet_pton($family, $host);
  return ($host, $port + 0, $path);
}

# Why _parse_url refused $url, for the admin.
sub _url_problem {
  my ($url) = @_;
  my $example = 'e.g. http://127.0.0.1:11340/v1/check or http://[::1]:11340/v1/check';
  if ($url =~ m{^http://([A-Za-z0-9.-]*[A-Za-z-][A-Za-z0-9.-]*)(?:[:/]|$)}) {
    return "a host name ($1) is not supported: its lookup would block outside "
      . "rdns_scorer_timeout on every message; use the service's IP address, $example";
  }
  return "not http://IP-ADDRESS[:PORT][/PATH], $example";
}

# got_hit() copies a hit's score into the shared config "for proper reporting" (the
# report reads it after the check). Left there, the next message could not tell it
# from an admin's or a user's "score RL_X n", however those were loaded (a prefs file,
# SQL or LDAP through parse_scores_only, which runs no parsing-end hook). So what a
# message replaced is put back once it is finished (per_msg_finish: its report is
# built, and spamd has not yet restored the config nor read the next user's
# preferences, which may set the very score the plugin wrote), unless something has
# replaced it since. check_start does the same for a caller that never calls finish().
sub per_msg_finish {
  my ($self, $opts) = @_;
  $self->_put_back_scores($opts->{permsgstatus}->{conf});
  return;
}

sub check_start {
  my ($self, $opts) = @_;
  $self->_put_back_scores($opts->{permsgstatus}->{conf});
  return;
}

sub _put_back_scores {
  my ($self, $conf) = @_;
  my $written = delete $self->{rdns_scorer_written} || {};
  foreach my $name (keys %$written) {
    my ($before, $score) = @{$written->{$name}};
    foreach my $set (0 .. 3) {
      my $scores = $conf->{scoreset}->[$set] or next;
      next if !defined $scores->{$name} || $scores->{$name} != $score;
      if (defined $before->[$set]) {
        $scores->{$name} = $before->[$set];
      } else {
        delete $scores->{$name};
      }
    }
  }
  return;
}

# --------------------------------------------------------------------------------------
# Eval rules

# Driver rule: hits every returned symbol (or RL_SCORER_FAIL); never hits itself.
sub check_rl_scorer {
  my ($self, $pms) = @_;
  my $result = $self->_result($pms);
  return 0 if $result->{done}++;
  if (defined $result->{error}) {
    $self->_hit($pms, 'RL_SCORER_FAIL', MIN_SCORE, ["scorer: $result->{error}"]);
    return 0;
  }
  foreach my $symbol (@{$result->{symbols} || []}) {
    $self->_hit($pms, $symbol->{name}, $symbol->{score}, $symbol->{options},
      $symbol->{shadowed});
  }
  if (@{$result->{rejected} || []}) {
    $self->_hit($pms, 'RL_SCORER_UNKNOWN', MIN_SCORE,
      ['rejected: ' . join(', ', @{$result->{rejected}})]);
  }
  return 0;
}

# True when the service answered for this message with a verdict; for metas such as
# the stock-rule overrides in rdns_scorer_overlap.cf (rules __RL_SCORER_OK and, with
# a family, __RL_SCORER_PTR_OK ('ptr') and __RL_SCORER_HELO_OK ('helo')).
sub check_rl_scorer_ok {
  my ($self, $pms, $family) = @_;
  $family = undef if defined $family && $family eq '';
  # "score RL_SCORER_CHECK 0" switches the plugin off: then this rule must neither
  # ask the service (a down service would still delay every message) nor report an
  # answer (the overlap metas would switch stock rules off for nothing).
  return 0 unless $pms->{conf}->{scores}->{RL_SCORER_CHECK};
  my $result = $self->_result($pms);
  return 0 if !defined $result->{symbols} || defined $result->{error} || $result->{skipped};
  my %returned = map { ($_->{name} => $_) } @{$result->{symbols}};
  # A shadowed symbol scores nothing: the stock rules it stands for must stay on
  # (shadow mode is for watching, and must not lower a message's score). Only those
  # of its own family, though: a shadowed RL_HELO_NOT_FQDN must not bring RDNS_NONE
  # back beside a scored RL_PTR_MISSING. Without a family: any shadowed symbol.
  return 0 if grep { $_->{shadowed} && _in_family($_->{name}, $family) } values %returned;
  # The service ran no checks (the client is in its [policy] skip_networks): no
  # verdict to stand in for the stock rules.
  return 0 if $returned{RL_SKIPPED_LOCAL};
  # A PTR lookup that failed (a dead resolver, a lame reverse zone) is no verdict on
  # the PTR either: the stock rDNS rules stay the fallback, as with the service down.
  return 0 if defined $family && $family eq 'ptr' && $returned{RL_PTR_TEMPFAIL};
  # No HELO sent, no verdict on it: the stock HELO rules (HELO_NO_DOMAIN on Postfix's
  # "unknown") are the only judges of it.
  return 0 if defined $family && $family eq 'helo' && !$result->{helo_asked};
  return 1;
}

# Whether the symbol $name belongs to $family ('ptr', 'helo', ...; undef: any family).
# The reply names no family, so it comes from the name: the service's symbol table
# (scorer/symbols.py) names its symbols RL_<FAMILY>_*; a test holds ptr and helo to it.
sub _in_family {
  my ($name, $family) = @_;
  return 1 if !defined $family;
  return index($name, 'RL_' . uc($family) . '_') == 0;
}

sub _hit {
  my ($self, $pms, $name, $service_score, $options, $shadowed) = @_;
  my $conf = $pms->{conf};
  # No RL_* rule has a score in the shipped config: one here is the admin's or the
  # user's (per_msg_finish took the previous message's dynamic scores out).
  my $score = $conf->{scores}->{$name};
  if (defined $score) {
    return if !$score;    # the admin's "score RL_X 0" disables it
    # Shadow mode on the service: shown with its evidence, never scored, whatever
    # the admin's own score for it (the report's "shadow:" option says what it would be).
    $score = MIN_SCORE if $shadowed;
  } else {
    $score = $service_score;
    $score = SCORE_LIMIT  if $score > SCORE_LIMIT;
    $score = -SCORE_LIMIT if $score < -SCORE_LIMIT;
    $score = MIN_SCORE    if abs($score) < MIN_SCORE;
  }
  foreach my $option (@{$options || []}) {
    $pms->test_log($option, $name);
  }
  $self->{rdns_scorer_written}->{$name} //=
    [[map { ($conf->{scoreset}->[$_] || {})->{$name} } 0 .. 3], $score];
  # Bayes learns a message as spam only with 3 points from header rules among its
  # score (AutoLearnThreshold), and a hit of no rule type counts as neither header nor
  # body. The RL_* symbols judge the connection, as the stock header rules the overlap
  # file switches off for them do (RDNS_NONE, HELO_*). Not over the admin's own tflags.
  $conf->{tflags}->{$name} //= 'autolearn_header';
  $pms->got_hit($name, '', ruletype => 'eval', score => $score);
  return;
}

# The service's answer for this message, asked once and cached on $pms.
sub _result {
  my ($self, $pms) = @_;
  return $pms->{rdns_scorer_result} if $pms->{rdns_scorer_result};
  my $result = eval { $self->_ask($pms) };
  if (!$result) {
    _rethrow_timeout($@);
    my $error = $@ || 'unknown error';
    $error =~ s/\s+at \S+ line \d+.*//s;
    $error =~ s/\s+\z//;
    $result = { error => _clean($error, 200) };
  }
  if (defined $result->{held}) {
    # No URL asked, each held down: the hang that held it down was said once, at info;
    # a line a message for the whole hold-down would drown the log (as in the rspamd
    # plugin). RL_SCORER_FAIL still says why.
    dbg("rdns_scorer: fail-open: $result->{error}");
  } elsif (defined $result->{error}) {
    info("rdns_scorer: fail-open: $result->{error}");
  }
  return $pms->{rdns_scorer_result} = $result;
}

# SpamAssassin's own time limit (Mail::SpamAssassin::Timeout) ends a check by dying
# with "__alarm__ignore__(id)" from its alarm handler: an eval of ours must let that
# through, as SpamAssassin's DNS code does, not turn it into a fail-open (or, inside
# the URL loop, into a try of the next URL).
sub _rethrow_timeout {
  my ($error) = @_;
  die $error if defined $error && $error =~ /__alarm__ignore__\(.*\)/s;
  return;
}

# --------------------------------------------------------------------------------------
# Request

# Seconds on a clock that only moves forward (CLOCK_MONOTONIC), for the deadline and the
# hold-downs, as the rspamd plugin's rspamd_util.get_ticks(). On the wall clock, one set
# back (an NTP step at boot, a VM resumed, date -s) stretched both by the step: a URL
# held down for an hour, or a call to a hung service waiting an hour past its timeout.
sub _now {
  return Time::HiRes::clock_gettime(Time::HiRes::CLOCK_MONOTONIC());
}

sub _ask {
  my ($self, $pms) = @_;
  my $conf   = $pms->{conf};
  my ($client, $why) = _client($pms);
  if (!$client) {
    dbg("rdns_scorer: nothing to ask: $why");
    return { symbols => [], skipped => 1 };
  }
  my %request = (ip => $client->{ip});
  $request{helo}     = $client->{helo}     if defined $client->{helo};
  $request{hostname} = $client->{hostname} if defined $client->{hostname};
  $request{queue_id} = $client->{queue_id} if defined $client->{queue_id};
  my $from = _envelope_from($pms, $client->{misread});
  $request{mail_from} = _text($from) if defined $from && $from ne '';
  my $user = $pms->{main}->{username};
  $request{user} = _text($user) if defined $user && $user ne '';
  my $body = _fitted_body(\%request);
  dbg("rdns_scorer: request $body");

  my $timeout  = $conf->{rdns_scorer_timeout} || 1;
  my $now      = _now();
  my $deadline = $now + $timeout;
  my $limit    = "deadline of ${timeout}s";
  # SpamAssassin's own time limit for the message (time_limit) may come first: then the
  # service gets less than rdns_scorer_timeout (each URL a share of what is left), and a
  # timeout is the message's, not the service's: it holds nothing down. SpamAssassin
  # keeps that limit on the wall clock: what is left of it, read once, moves to ours.
  my $sa_left  = $pms->{master_deadline} ? $pms->{master_deadline} - Time::HiRes::time() : undef;
  my $sa_limit = defined $sa_left && $sa_left < $timeout;
  if ($sa_limit) {
    $deadline = $now + $sa_left;
    $limit    = "SpamAssassin's time_limit";
  }
  # A URL held down (_count_hang) is skipped: a hung service (or a host that drops the
  # connection attempts) would otherwise cost every message the whole timeout. Per
  # process: each spamd child finds out for itself.
  my $breakers = $self->{rdns_scorer_breakers} ||= {};
  my (@urls, @errors);
  foreach my $url (@{$conf->{rdns_scorer_url} || [DEFAULT_URL]}) {
    my $breaker = $breakers->{$url};
    if ($breaker && defined $breaker->{held_until} && $breaker->{held_until} > $now) {
      push(@errors, sprintf('%s: not asked, it timed out %.0fs ago (rdns_scorer_holddown)',
        $url, $now - $breaker->{seen}));
      next;
    }
    # Its hold-down over, this message is the probe (half-open): the next hang holds
    # it down again at once, an answer closes the breaker.
    dbg("rdns_scorer: $url: hold-down over, asking it again") if $breaker && $breaker->{held_until};
    push(@urls, $url);
  }
  foreach my $index (0 .. $#urls) {
    my $url       = $urls[$index];
    my $remaining = $deadline - _now();
    if ($remaining <= 0) {
      push(@errors, "$url: not tried, $limit passed");
      last;
    }
    # A host that is down never completes the connect: it gets only its share of the
    # time left, so the next URL still gets a chance. A service that accepted has the
    # rest of the deadline to answer (a timeout after that is not retried): it may
    # take its request_deadline (0.8 s of our 1 s) for a check with slow DNS, which a
    # share would cut off at every URL in turn (docs/spamassassin.md, "Fail-open").
    my $connect_by = _now() + $remaining / (@urls - $index);
    my ($status, $reply) = eval {
      _post($url, $body, $conf->{rdns_scorer_token}, $deadline, $connect_by);
    };
    if (!defined $status) {
      _rethrow_timeout($@);
      my $error = $@ || 'unknown error';
      $error =~ s/\s+at \S+ line \d+.*//s;
      $error =~ s/\s+\z//;
      $error .= ", $limit passed" if $sa_limit && _now() >= $deadline;
      push(@errors, "$url: " . _clean($error, 120));
      if ($error !~ /^timeout \(/) {
        $self->_close_breaker($url, $error);    # refused, reset: quick, not hung
      } elsif (!$sa_limit && _had_its_time($remaining, $timeout, $index, scalar @urls)) {
        $self->_count_hang($conf, $url);
      }
      next;
    }
    $self->_close_breaker($url, "HTTP $status");    # it answered, whatever it said: not hung
    if ($status != 200) {
      # The service's own words ({"error": ...}) say what to fix: "HTTP 401: missing or
      # wrong bearer token".
      my $said = _error_words(_decode_json($reply));
      push(@errors, "$url: HTTP $status" . (defined $said ? ": $said" : ''));
      # A 4xx is the request's fault: every instance refuses the same request, so the
      # next URL would only cost time; but not one of RETRIED_4XX (a token this instance
      # does not take yet), nor a 5xx (503: overloaded): this instance's alone.
      last if $status >= 400 && $status < 500 && !RETRIED_4XX->{$status};
      next;
    }
    # What the service said, beside the request above: `spamassassin -D rdns_scorer`
    # then shows why each symbol fired (its evidence), not only that it did.
    dbg("rdns_scorer: reply from $url: " . _clean($reply, 2000));
    my $result = _parse_reply($reply);
    if (defined $result->{error}) {
      push(@errors, "$url: $result->{error}");
      next;
    }
    # Whether the service was asked about a HELO at all (none sent: a client that sent
    # none, Postfix's "from unknown (unknown [IP])", or one the Received line lost): its
    # reply then holds no verdict on the HELO, and the stock HELO rules stay on.
    $result->{helo_asked} = defined $request{helo} ? 1 : 0;
    return $result;
  }
  # held: every URL held down, none asked (_result logs that at debug only).
  return { error => join('; ', @errors), (!@urls && @errors ? (held => 1) : ()) };
}

# Whether the call to the URL at $index of the $count asked, begun with $remaining
# seconds left of the $timeout, had (nearly) the time the plan gives it: every URL
# before it that failed took no more than its share of the deadline (the time left /
# the URLs left), so it had at least ($count - $index) / $count of it. A URL asked after
# one that failed late (a 503 after 0.8 s of 1) has what that one left: running out of
# that says nothing of a service that may answer every other message at once, and
# counting it held a healthy URL down.
sub _had_its_time {
  my ($remaining, $timeout, $index, $count) = @_;
  return $remaining >= HUNG_SHARE * $timeout * ($count - $index) / $count;
}

# A call to $url timed out with its time (not SpamAssassin's time_limit's): one more
# hang in a row, and at rdns_scorer_holddown_after of them it is held down for
# rdns_scorer_holddown. A probe (a hang once a hold-down is over) has that many already:
# held down again at once. The rspamd plugin counts a hang only for a request sent
# after the last one counted, so that scans timing out together in one stall count
# once; in one SpamAssassin process each message is checked after the last, so every
# hang is of a request sent after the one before timed out.
sub _count_hang {
  my ($self, $conf, $url) = @_;
  my $breaker = $self->{rdns_scorer_breakers}->{$url} ||= { hangs => 0 };
  $breaker->{hangs}++;
  $breaker->{seen} = _now();
  my $after    = $conf->{rdns_scorer_holddown_after} || HOLDDOWN_AFTER;
  my $holddown = $conf->{rdns_scorer_holddown};
  if ($holddown && $breaker->{hangs} >= $after) {
    $breaker->{held_until} = $breaker->{seen} + $holddown;
    info("rdns_scorer: $url timed out ($breaker->{hangs} in a row): not asked for ${holddown}s");
  } else {
    info("rdns_scorer: $url timed out ($breaker->{hangs} in a row"
      . ($holddown ? "; held down at $after)" : ')'));
  }
  return;
}

# $url did not hang ($how: it answered, or failed at once): its breaker closes, and the
# end of a hold-down is said once, as its start was (as in the rspamd plugin).
sub _close_breaker {
  my ($self, $url, $how) = @_;
  my $breaker = delete $self->{rdns_scorer_breakers}->{$url};
  info("rdns_scorer: $url no longer hangs ($how): hold-down over")
    if $breaker && defined $breaker->{held_until};
  return;
}

# The connecting client: the first untrusted relay, as trusted_networks/internal_networks
# decide (authenticated hops are trusted already), read together with the Received line
# it came from. Returns the request's client fields, or (undef, why nothing is asked).
sub _client {
  my ($pms) = @_;
  my @received = _received_lines($pms);
  my ($relay, $index) = _misread_client($pms, @received);
  my $misread = $relay ? 1 : 0;
  if (!$relay) {
    $relay = ($pms->{relays_untrusted} || [])->[0];
    return (undef, 'no untrusted relay (all trusted or no Received)') if !$relay || !$relay->{ip};
    $index = $pms->{last_trusted_relay_index} + 1;
  }
  my $line = $received[$index];
  # SpamAssassin counts every Received header above the first untrusted relay in
  # last_trusted_relay_index, those it made no relay of (skipped or unparseable) too: the
  # relay's own line is the next one. It makes up a relay for each originating_ip_headers
  # header (X-Originating-IP, X-SenderIP, ...: on in its default prefs) and puts it after
  # every real Received line; when all the real hops are trusted (authenticated
  # submission, webmail) that relay is the first untrusted one: the webmail user's home
  # address, which no MTA of ours spoke to. It has no Received line of its own.
  return (undef, 'the first untrusted relay has no Received line (an originating_ip_headers address)')
    if !defined $line || index(lc $line, lc $relay->{ip}) < 0;
  # A line of ours above that records an SMTP handover with no client at all (OpenSMTPD's
  # mask-src writes "Received: by HOST ... with ESMTP"): SpamAssassin skips it, and the
  # line it takes for the client's was written by the client itself, about its own
  # client (a laptop's dynamic address), as it liked. Not Gmail's delivery to a mailbox
  # ("by 2002:a05:... with SMTP", fetched from it or forwarded), by an address: the
  # line below is Google's MX's.
  foreach my $above (@received[0 .. $index - 1]) {
    my ($by) = $above =~ /^ by (\S+) /;
    return (undef, 'a Received line above the client\'s hides its client: ' . _clean($above, 120))
      if defined $by && $by !~ IS_IP_ADDRESS && $above =~ SMTP_WITH;
  }
  my ($ip, $helo, $rdns) = ($relay->{ip}, $relay->{helo}, $relay->{rdns});
  $rdns = undef if $relay->{no_reverse_dns};
  if (_misread_helo_literal($relay) && $line =~ QMAIL_FROM) {
    ($rdns, $helo, $ip) = ($1, $2, $3);
    $rdns = undef if lc $rdns eq 'unknown';
  }
  # SpamAssassin takes any line with "Exim" in it for Exim's, and read Postfix's "from
  # [198.51.100.9] (NAME [ADDRESS])", the HELO an address literal, as Exim's "from
  # [ADDRESS] (...)": the literal as the client's address, and the first "helo=" anywhere
  # (in a recipient's quoted local part, RFC 5321 section 4.1.2, "u+(helo=x)(Exim)"@...,
  # which Postfix writes whole in "for <...>") as its HELO, with no rdns. A client chose
  # the address and HELO scored (and a private literal made the relay trusted:
  # _misread_client). Postfix's own part of the line is read instead.
  if ($line =~ POSTFIX_FROM) {
    ($helo, $rdns, $ip) = ($1, lc $2 eq 'unknown' ? undef : $2, $3);
  }
  # SpamAssassin writes each NUL, '#', bracket, parenthesis, '<', '>' and '|' of a name as
  # '!': an rdns with one is no DNS name (OpenSMTPD's "<unknown>" for a client without
  # one). Exchange names the client by its EHLO after "from", and looks up no name:
  # SpamAssassin reads it as the rdns all the same.
  $rdns = undef if defined $rdns && (index($rdns, '!') >= 0 || $line =~ EXCHANGE_BY);
  my $has_rdns = defined $rdns && $rdns ne '';
  # A client that sent no HELO at all gets "unknown" in its place from Postfix
  # (smtpd's Received header, when there is no client name either): not the client's
  # own words, so leave it out rather than score it RL_HELO_NOT_FQDN. Postfix writes it
  # in lower case, and SpamAssassin keeps the case: "UNKNOWN" is a client's own HELO.
  # Exim ("helo=unknown") and qmail ("(HELO unknown)") label a HELO as one: there it is
  # the client's own word too.
  $helo = undef if defined $helo && $helo eq 'unknown' && !$has_rdns
    && $line !~ /${\ HELO_LABEL}unknown(?=[\s)])/i;
  # SpamAssassin parses a Received header as it decoded it: octets that are no UTF-8 it
  # reads as Windows-1252 and gives in UTF-8 (Mail::SpamAssassin::Message::Node::
  # _normalize), so a HELO of raw 8-bit octets (no SMTPUTF8), "caf\xe9.example", reached
  # us as the valid IDN "caf\x{e9}.example", while the rspamd plugin sends the octets. The
  # octets of one with a '!' or above 0x7F are read back from the line as the MTA wrote it.
  # So is one Exim took whole, with a space in it, of which SpamAssassin gives the first
  # word (EXIM_HELO): "mail.example.org junk", no name (RL_HELO_INVALID through rspamd,
  # which Exim passes it whole, "Helo: mail.example.org junk"), was sent as the name.
  $helo = _helo_as_sent((_received_lines($pms, 'raw'))[$index], $helo)
    if defined $helo && ($helo =~ /[!\x80-\xFF]/
      || ($line =~ EXIM_LINE && $line =~ /${\ EXIM_HELO}(?:[^\s)]+) (?!ident=[^\s)]*\) by )/));
  # qmail labels it "(HELO ...)" whatever the client said; qpsmtpd's "(EHLO ...)" is as sent.
  $helo = _qmail_helo($helo)
    if defined $helo && index($helo, '?') >= 0 && $line =~ QMAIL_FROM && $line =~ / \(HELO /;
  my %client = (ip => _text($ip), misread => $misread);
  $client{helo} = _text($helo) if defined $helo && $helo ne '';
  # The service shows hostname as the name the MTA verified. Sendmail writes a name
  # whose forward lookup did not confirm the address as "(NAME [IP] (may be forged))",
  # and SpamAssassin keeps it as the relay's rdns all the same: not sent as verified.
  $client{hostname} = _text($rdns) if $has_rdns && !_may_be_forged($line, $rdns);
  # Exchange's "id" is its own version (15.20.7452.22), the same on every message.
  $client{queue_id} = _text($relay->{id})
    if defined $relay->{id} && $relay->{id} ne '' && $line !~ EXCHANGE_BY;
  return \%client;
}

# The envelope sender: SpamAssassin's EnvelopeFrom; when it has none and no
# envelope_sender_header is set, the Return-Path or X-Envelope-From above every Received
# header (whichever is first), the copy of MAIL FROM the final delivery writes (RFC 5321
# section 4.4). SpamAssassin gives up before it reads that Return-Path when an
# X-Envelope-From stands below a Received line: a header any sender may write, which so
# switched the MAIL FROM checks off.
# $misread: the client is a relay SpamAssassin misread (_misread_client), so its first
# untrusted relay is the line below, the client's own, whose "envelope-from" it reads
# first: the sender's to write, passed over for the delivery's header (an
# X-Envelope-From there too: before delivery no Return-Path has been written yet).
sub _envelope_from {
  my ($pms, $misread) = @_;
  my $set = defined $pms->{conf}->{envelope_sender_header};
  my $below = ($pms->{relays_untrusted} || [])->[0];
  my $theirs = $misread && !$set && $below && ($below->{envfrom} // '') =~ /\@/;
  my $from = $theirs ? undef : $pms->get('EnvelopeFrom:addr', undef);
  # The relay's "envelope-from" (Exim's, Sendmail's), which SpamAssassin reads first, it
  # parsed from the header as it decoded it (_client), with a '!' for each '#', '|',
  # bracket, parenthesis, '<' and '>' (_as_parsed), and only up to the first space or
  # the last letter or digit: as sent, it is on the line. Read back whenever
  # SpamAssassin took it, or passed it over for want of an '@' (the first word of a
  # quoted local part, '"john' of '"john doe"@example.org'), as it would have taken
  # the whole.
  # Not past a misread line (_misread_client): the line below is the client's own,
  # where the sender writes what it likes ('"x y"@bank.example', which SpamAssassin passed
  # over, was read back from there and sent before delivery, with no Return-Path yet).
  my $envfrom = $below && !$misread && !$set ? $below->{envfrom} // '' : '';
  if ($envfrom ne '' && (!defined $from || $from eq $envfrom)) {
    my $sent = _envfrom_as_sent($pms, $envfrom);
    $from = $sent if index($sent, '@') > 0;
  }
  return $from if $set;
  my ($first) = $pms->get('ALL') =~ /^(Return-Path|X-Envelope-From|Received):/mi;
  return $from if !defined $first || lc $first eq 'received';
  my $addr = $pms->get("$first:first:addr", undef);
  # The delivery writes MAIL FROM's reverse-path as it is, one address in angle brackets
  # (section 4.4), where SpamAssassin's address parser finds none in the sender at an IPv6
  # literal "a@[IPv6:2001:db8::1]" (section 4.1.3) nor in '""@example.org', so that
  # SpamAssassin gave up on both, and finds '"a@b"' in the quoted local part (section
  # 4.1.2) '"a@b"@example.org', no address (RL_MAILFROM_BAD_SYNTAX): Postfix takes each,
  # and rspamd passes it on. That header, when it is where SpamAssassin found the sender
  # (or it found none), is read as written.
  my ($written) = ($pms->get("$first:first:raw", undef) // '') =~ /^\s*<([^<>\s]+)>\s*\z/;
  return $written // $addr if !defined $from || (defined $addr && $from eq $addr);
  return $from;
}

# $from, the first untrusted relay's envelope sender as SpamAssassin parsed it (from a
# header that is no UTF-8, "user@caf\x{e9}.example"; with '!' for a '#' or a parenthesis,
# "a!b!@example.org"), as its Received line has it ("user@caf\xe9.example",
# "a(b)@example.org": no address, as the rspamd plugin sends it), where SpamAssassin
# found it; else as parsed. SpamAssassin reads it as "(\S+)\b": to the first space, and
# back to the last letter or digit (a word boundary), so of Exim's "(envelope-from
# <ADDRESS>)" (the address it passes rspamd as "From: <ADDRESS>") it kept
# "a@!192.0.2.1" of the sender at an address literal "a@[192.0.2.1]" (RFC 5321
# section 4.1.3), "a@example.org" of "a@example.org-", and '"john' of the quoted local
# part (section 4.1.2) '"john doe"@example.org': the address is read whole, to the
# ">)" that ends it. Where the line has several labels, the MTA's own, the last, is read
# instead of the one SpamAssassin took (the first: it may stand in a HELO).
sub _envfrom_as_sent {
  my ($pms, $from) = @_;
  # As a HELO's (_helo_as_sent): the pattern has a class for each run of 8-bit octets,
  # and compiling it cost ~20 ms a message for an 8 KB "envelope-from" of "u\xe9u\xe9...".
  # One longer than an SMTP command line (512 octets, RFC 5321 section 4.5.3.1.4) was
  # never one client's MAIL FROM: sent as SpamAssassin decoded it, an address over 254
  # octets (section 4.5.3.1.3) and RL_MAILFROM_BAD_SYNTAX either way.
  return $from if length($from) > SMTP_LINE;
  my $line = (_received_lines($pms, 'raw'))[$pms->{last_trusted_relay_index} + 1];
  my $sent = _as_parsed($from);
  my $label = qr/(?:return-path:? |envelope-(?:sender|from)[ =])/i;
  # The MTA writes its own label after the client's part of the line (Exim's "(envelope-from
  # <ADDRESS>)" after "(Exim VERSION)"), and a HELO Exim takes as junk (helo_accept_junk_hosts,
  # cPanel's "*") stands there whole: "x envelope-from <ceo@bank.example>" made SpamAssassin,
  # which reads the first label, take the sender the client chose. Of several, the last is
  # the MTA's. Found a label at a time (linear), then read where it stands.
  my ($labels, $last) = (0);
  if (defined $line) {
    while ($line =~ /$label/g) { $labels++; $last = pos($line) }
  }
  return $1 if $labels > 1 && substr($line, $last) =~ /^<([^<>\s]+)>\)/;
  # Where SpamAssassin read it, the first label followed by it (one alternation at each
  # place, not a search of the line for a later one ending in ">)": from each of a
  # HELO's "return-path <a" that search read to the next '>', ~3.5 ms a message for an
  # 8 KB line, as its length squared); not past the first '>' (one in a quoted local
  # part is read as SpamAssassin read it).
  return $1 // $2 if defined $line && $line =~ /$label(?:<($sent[^>]*)>\)|<*($sent))/;
  dbg('rdns_scorer: envelope sender ' . _clean($from, 100) . ' not found in its Received line: sent as SpamAssassin parsed it');
  return $from;
}

# Every Received header, newest first, each on one line with single spaces and a space at
# either end, as SpamAssassin read them; with $raw, as the MTA wrote them (its octets, not
# decoded: see _client).
sub _received_lines {
  my ($pms, $raw) = @_;
  my $msg = $pms->{msg} or return;
  return map { (my $flat = " $_ ") =~ s/\s+/ /g; $flat } $msg->get_header('Received', $raw);
}

# qmail and qpsmtpd write "from REMOTEHOST (HELO NAME) (ADDRESS)"; after "with ESMTP"
# (ESMTPS, UTF8ESMTPS, ...) SpamAssassin reads an address literal in NAME as the
# client's address, "HELO" as its rdns, and decides trust by the literal's address: a
# private one ("HELO [192.168.1.2]", a spam-sending bot's LAN address) is trusted by
# inference, and the first untrusted relay is then the line below, the client's own,
# about its own client. So with Postfix's "from [LITERAL] (NAME [ADDRESS])" on a line
# with "Exim" in it (POSTFIX_FROM, _client). Returns the first relay SpamAssassin so
# trusted whose ADDRESS it would not have trusted, and the index of its Received line;
# or nothing.
sub _misread_client {
  my ($pms, @received) = @_;
  my @trusted = @{$pms->{relays_trusted} || []};
  # Past a relay in msa_networks SpamAssassin trusts every relay, whatever its address.
  return if !@trusted || grep { $_->{msa} } @trusted;
  # Every relay by its address (the first of each: a search of @trusted finds it first),
  # and those a qmail line may have been misread as, read once: a line's literal is
  # looked up. A search of @trusted for each of hundreds of trusted lines took seconds a
  # message (a pattern compiled for each relay and line).
  my (%at, %helo_literal_at);
  foreach my $i (0 .. $#trusted) {
    my $ip = lc $trusted[$i]->{ip};
    $at{$ip} //= $i;
    $helo_literal_at{$ip} //= $i if _misread_helo_literal($trusted[$i]);
  }
  foreach my $index (0 .. $pms->{last_trusted_relay_index}) {
    my $line = $received[$index];
    next if !defined $line;
    my ($relay, $address);
    if ($line =~ QMAIL_FROM) {
      $address = $3;
      $relay = _relay_at_literal($2, \%helo_literal_at, \@trusted);
    } elsif ($line =~ /^ from \[/i && $line =~ POSTFIX_FROM) {
      # (Only a line from an address literal can be misread: most are from a name, and
      # are passed over before the longer pattern.)
      $address = $3;
      $relay = _relay_at_literal($1, \%at, \@trusted, $address);
    }
    return ($relay, $index) if $relay && !$relay->{auth} && !_trusted_address($pms, $address);
  }
  return;
}

# Of $trusted, the first relay at the address of the address literal $literal, where $at
# says each address first is; none at $except (the address the line names: read right).
# Or undef.
sub _relay_at_literal {
  my ($literal, $at, $trusted, $except) = @_;
  my ($ip) = $literal =~ /^\[(.*)\]\z/;
  return if !defined $ip;
  $ip = _as_relay_address($ip);
  return if defined $except && $ip eq _as_relay_address($except);
  my $first = $at->{$ip};
  return defined $first ? $trusted->[$first] : undef;
}

# $address as SpamAssassin reads a relay's address (Received.pm, parse_received_line: the
# IPv6: tag, an IPv6 zone and the ::ffff: of an IPv4-mapped address dropped, so "IPv6:::
# ffff:192.168.1.2" is 192.168.1.2), in lower case.
sub _as_relay_address {
  my ($ip) = @_;
  $ip =~ s/^ipv6://i;
  $ip =~ s/%[A-Z0-9._~-]*\z//si;
  $ip =~ s/^0*:0*:(?:0*:)*ffff:(\d+\.\d+\.\d+\.\d+)$/$1/i;
  return lc $ip;
}

# Whether SpamAssassin's Received parser trusts a relay from $address that did not
# authenticate: by trusted_networks (internal_networks when only those are set), or
# with neither set, by inference: a private address.
sub _trusted_address {
  my ($pms, $address) = @_;
  my $conf = $pms->{conf};
  return $address =~ IP_PRIVATE ? 1 : 0
    if !$conf->{trusted_networks_configured} && !$conf->{internal_networks_configured};
  my $networks = $conf->{trusted_networks_configured} ? 'trusted_networks' : 'internal_networks';
  return $conf->{$networks}->contains_ip($address) ? 1 : 0;
}

# True for a relay SpamAssassin made of qmail's "(HELO [LITERAL]) (ADDRESS)": the rdns
# it gives is the word "HELO" (or qpsmtpd's "EHLO"), the address the literal's.
sub _misread_helo_literal {
  my ($relay) = @_;
  return defined $relay->{rdns} && $relay->{rdns} =~ /^(?:HELO|EHLO)\z/i;
}

# The HELO qmail 1.03 (and netqmail) wrote as $helo: its received.c writes each
# character but letters, digits and ".@%+/=:-" as '?', so the address literal
# "[192.0.2.1]" (RFC 5321 section 4.1.3) reads "?192.0.2.1?" and "mail_1.example"
# "mail?1.example". An address between two is its literal; any other '?' hides what
# was sent (a bracket, an underscore, a space, a control character): left out, not
# scored as the invalid name it is not. notqmail writes brackets as they are.
sub _qmail_helo {
  my ($helo) = @_;
  return "[$1]" if $helo =~ /^\?((?:IPv6:)?[0-9a-f.:]+)\?\z/i;
  dbg('rdns_scorer: HELO ' . _clean($helo, 100) . ' as qmail writes it, with "?" for what it will not show: not sent');
  return;
}

# True when $line, the client's Received line, says its rdns "may be forged" (Sendmail).
sub _may_be_forged {
  my ($line, $rdns) = @_;
  my $name = _as_parsed($rdns);
  return $line =~ /\((?:[^\s()]*\@)?$name\.* \[[^\]]*\] \(may be forged\)\)/i ? 1 : 0;
}

# The HELO as the client sent it, read back from $line, the client's Received line as the
# MTA wrote it, or undef when the line does not have it. SpamAssassin writes each NUL,
# '#', bracket, parenthesis, '<', '>' and '|' of a relay's HELO as '!', so the address
# literal "[192.0.2.1]" (RFC 5321 section 4.1.3) and "#192.0.2.1#", no name nor literal
# at all, reach us alike as "!192.0.2.1!"; and octets that are no UTF-8 decoded
# (_as_parsed). The HELO stands after "helo=" (Exim), "HELO " or
# "EHLO " (qmail, qpsmtpd) or "from" (Postfix, Sendmail; Exim when it is the client's
# name).
sub _helo_as_sent {
  my ($line, $helo) = @_;
  # RFC 5321 section 4.5.3.1.4: a command line is at most 512 octets, "HELO " included.
  # A longer one is no greeting to read back (as parsed, it is no valid name either),
  # and the reading costs time as its length squared: each "(helo=" in a sender's
  # 8 KB line is a place the pattern starts again (12 ms a message).
  return $helo if length($helo) > SMTP_LINE;
  my $sent = _as_parsed($helo);
  # Exim's whole, to the ") by" (RFC 5321 section 4.1.1.1: the rest of the command line
  # is the argument for Exim); whitespace inside is one space here, as unfolded.
  return $1 if $line =~ EXIM_LINE && $line =~ /${\ EXIM_HELO}($sent.*?)(?: ident=[^\s)]*)?\) by /i;
  # "helo=" first: Exim's "from" names the client's rdns or address.
  return $1 if $line =~ /${\ HELO_LABEL}($sent)(?=[\s)])/i || $line =~ /^ from ($sent)(?=[\s)])/i;
  dbg('rdns_scorer: HELO ' . _clean($helo, 100) . ' not found in the client\'s Received line: not sent');
  return;
}

# A pattern for the header text SpamAssassin parsed $value (a run of non-space) from:
# it wrote each NUL, '#', bracket, parenthesis, '<', '>' and '|' in it as '!', and a
# header that is no UTF-8 it decoded as Windows-1252, each octet above 0x7F one
# character, so each run of them a run of octets above 0x7F in UTF-8 (possessive: the
# same run, and no backtracking). Where Encode::Detect is installed (Debian: suggested
# only), SpamAssassin may guess another charset, whose characters may take in ASCII
# octets after one above 0x7F: such a HELO is not found, and is left out.
sub _as_parsed {
  my ($value) = @_;
  return join('\S', map {
    join('', map { /^[\x80-\xFF]/ ? '[\x80-\xFF]++' : quotemeta } split(/([\x80-\xFF]+)/, $_))
  } split(/!/, $value, -1));
}

# Header text as the characters the service reads from the same bytes in the rspamd
# plugin's msgpack (scorer/protocol.py: UTF-8 with surrogateescape): each valid UTF-8
# character as itself, each other byte as U+DC80..U+DCFF (0xE9 as U+DCE9), which the
# service shows as "\xe9" and scores as "bytes that are not UTF-8" (_json writes it as
# the escape "\udce9"). Read as Latin-1, a HELO sent as raw 8-bit bytes (no SMTPUTF8,
# RFC 6531) "caf\xe9.example" reached the service as the valid IDN "caf\x{e9}.example"
# and was judged as a name, while through rspamd the same session was RL_HELO_INVALID.
# Cut to the MAX_FIELD characters the service reads
# (MAX_FIELD_CHARS in scorer/protocol.py), a byte that is not UTF-8 one character as
# there: a header holds up to 8 KB, and a longer body than the service takes ([server]
# max_body_bytes) would be refused with a 413, every check of the message off with it.
sub _text {
  my ($value) = @_;
  my $octets = "$value";
  utf8::encode($octets) if utf8::is_utf8($octets);    # characters already: their octets
  return substr($octets, 0, MAX_FIELD) if $octets !~ /[\x80-\xFF]/;    # ASCII: as it is
  # Up to MAX_FIELD characters, a run of valid ones at a time (at most MAX_FIELD: Perl's
  # limit on repeating a group is 32,766), each other octet on its own; what follows is
  # cut anyway. A hostile 8 KB of \xe9 costs ~0.6 ms.
  my ($text, $characters) = ('', 0);
  while ($characters < MAX_FIELD
      && $octets =~ /\G(?:((?:${\ UTF8_CHAR}){1,${\ MAX_FIELD}})|([\x80-\xFF]))/g) {
    if (defined $1) {
      my $run = $1;
      utf8::decode($run);
      $text .= $run;
      $characters += length($run);
    } else {
      $text .= chr(0xDC00 + ord($2));
      $characters++;
    }
  }
  return substr($text, 0, MAX_FIELD);
}

# The request as JSON in UTF-8, but each U+DC80..U+DCFF (a byte that is not UTF-8, from
# _text) as the escape "\udcXX": JSON::PP writes it in Perl's own UTF-8 (ED B3 A9), three
# bytes the service would read as three bytes that are not UTF-8. Python's json reads the
# escape as the very character msgpack's surrogateescape makes of the byte (RFC 8259
# section 7 allows an escaped lone surrogate; section 8.2 leaves what it means to the
# reader). No valid UTF-8 has \xED before \xA0..\xBF: nothing else is rewritten.
sub _json {
  my ($json, $request) = @_;
  my $body = $json->encode($request);
  $body =~ s/(\xED[\xB2\xB3][\x80-\xBF])/$SURROGATE_ESCAPES{$1}/g;
  return $body;
}

# The request as JSON of MAX_BODY bytes at most. JSON writes a control character in six
# bytes (\u0001), and a byte that is not UTF-8 too (\udce9): a client filling its HELO
# and MAIL FROM with them made a body of ~13 KB,
# which a service whose max_body_bytes was lowered refused (413), and the plugin failing
# open let that message through with no check at all. The longest text field is halved
# until the body fits: what is left of such a field is as invalid as the whole (a HELO or
# an address has no control character), and no real one comes near (RFC 5321 section
# 4.5.3.1: a domain is at most 255 octets, a path 256).
sub _fitted_body {
  my ($request) = @_;
  my $json = JSON::PP->new->utf8->canonical;
  my $body = _json($json, $request);
  while (length($body) > MAX_BODY) {
    my ($longest) = sort { length($request->{$b}) <=> length($request->{$a}) || $a cmp $b }
      grep { $_ ne 'ip' } keys %$request;
    $request->{$longest} = substr($request->{$longest}, 0, length($request->{$longest}) >> 1);
    $body = _json($json, $request);
  }
  return $body;
}

# Printable, length-capped text for logs and the report.
sub _clean {
  my ($text, $limit) = @_;
  $text = '' if !defined $text;
  $text =~ s/([\x00-\x1f\x7f])/sprintf('\\x%02x', ord($1))/ge;
  # C1 controls, format characters (bidi overrides and marks, zero-width ones) and the
  # line and paragraph separators: what the service escapes in its own options too.
  $text =~ s/([\x{80}-\x{9f}\p{Cf}\p{Zl}\p{Zp}])/sprintf('\\u%04x', ord($1))/ge;
  $text = substr($text, 0, $limit) . '...' if length($text) > $limit;
  return $text;
}

# The "error" text of decoded reply data, printable and capped, or undef: the service's
# own words for a request it refused ({"error": "...", "field": ...}), or whatever
# answered a 200 that is no verdict.
sub _error_words {
  my ($data) = @_;
  return if ref($data) ne 'HASH' || !defined $data->{error} || ref($data->{error});
  return _clean($data->{error}, 100);
}

# The data in a reply body, or undef. Nested past MAX_DEPTH it is no reply of the
# service's: JSON::PP would follow it down to 512 levels, and past 100 Perl (run with
# -w, as spamd is) warns "Deep recursion" into the log for every message.
sub _decode_json {
  my ($text) = @_;
  my $data = eval { JSON::PP->new->utf8->max_depth(MAX_DEPTH)->decode($text) };
  _rethrow_timeout($@);
  return $data;
}

# A number as the reply's JSON wrote it, not a string that looks like one ("5", "inf"),
# which no service of ours sends (the rspamd plugin refuses both alike). JSON::PP gives a
# number as a numeric scalar without a string value; look before anything prints it.
sub _is_json_number {
  my ($value) = @_;
  return 0 if !defined $value || ref($value);
  my $flags = B::svref_2object(\$value)->FLAGS;
  return ($flags & (B::SVp_IOK | B::SVp_NOK)) && !($flags & B::SVp_POK) ? 1 : 0;
}

# Validates the reply; returns { symbols => [...], rejected => [...] } or { error => ... }.
sub _parse_reply {
  my ($reply) = @_;
  my $data = _decode_json($reply);
  return { error => 'bad JSON' } if !defined $data;
  if (ref($data) ne 'HASH' || ref($data->{symbols}) ne 'ARRAY') {
    # Words of its own ({"error": ...}) say what answered: a proxy, another service.
    my $said = _error_words($data);
    my $error = 'bad reply: not an object with a symbols list';
    return { error => defined $said ? "$error: $said" : $error };
  }
  my (@symbols, @rejected, %seen);
  my $evidence = 0;    # characters of options kept so far (MAX_EVIDENCE)
  foreach my $symbol (@{$data->{symbols}}) {
    if (@symbols + @rejected >= MAX_SYMBOLS) {
      push(@rejected, 'too many symbols');
      last;
    }
    my $name = ref($symbol) eq 'HASH' ? $symbol->{name} : undef;
    my $score = ref($symbol) eq 'HASH' ? $symbol->{score} : undef;
    if (!defined $name || ref($name) || $name !~ NAME_RE || index($name, 'RL_SCORER_') == 0
        || $seen{$name}++) {
      push(@rejected, defined $name && !ref($name) ? _clean($name, 64) : '(no name)');
      next;
    }
    $name = $1 if $name =~ NAME_RE;    # untaint: the name is known to be safe now
    if (!_is_json_number($score) || $score != $score || abs($score) > MAX_SCORE) {
      push(@rejected, "$name (bad score)");
      next;
    }
    my @options;
    my $raw = $symbol->{options};
    foreach my $option (ref($raw) eq 'ARRAY' ? @$raw : ()) {
      last if @options >= MAX_OPTIONS;
      next if !defined $option || ref($option);
      my $shown = _clean($option, MAX_OPTION);
      if ($evidence + length($shown) > MAX_EVIDENCE) {
        push(@options, '(more evidence left out)');
        $evidence = MAX_EVIDENCE;
        last;
      }
      $evidence += length($shown);
      push(@options, $shown);
    }
    my $shadow = $symbol->{shadow_score};
    my $shadowed = _is_json_number($shadow) && $shadow != 0;
    push(@symbols,
      { name => $name, score => $score + 0, options => \@options, shadowed => $shadowed ? 1 : 0 });
  }
  return { symbols => \@symbols, rejected => \@rejected };
}

# --------------------------------------------------------------------------------------
# HTTP: one POST, non-blocking, never past $deadline (select on every step, no alarm()).

sub _post {
  my ($url, $body, $token, $deadline, $connect_by) = @_;
  my ($host, $port, $path) = _parse_url($url) or die "bad URL\n";
  my $socket = IO::Socket::IP->new(
    PeerHost => $host,
    PeerPort => $port,
    Proto    => 'tcp',
    Blocking => 0,
    # Numbers only (_parse_url takes no names): getaddrinfo never asks a resolver.
    GetAddrInfoFlags => AI_NUMERICHOST | AI_NUMERICSERV,
  ) or die "connect: " . ($@ || $!) . "\n";
  while (!$socket->connect) {
    last if $! == EISCONN;
    die "connect: $!\n" if $! != EINPROGRESS && $! != EWOULDBLOCK && $! != EAGAIN && $! != EINTR;
    _wait($socket, 'w', $connect_by, 'connect');
  }
  my $host_header = $host =~ /:/ ? "[$host]" : $host;
  my $request = "POST $path HTTP/1.0\r\n"
    . "Host: $host_header:$port\r\n"
    . "Content-Type: application/json\r\n"
    . "Accept: application/json\r\n"
    . "User-Agent: rdns-scorer-spamassassin/$VERSION\r\n"
    . (defined $token && $token ne '' ? "Authorization: Bearer $token\r\n" : '')
    . "Content-Length: " . length($body) . "\r\n"
    . "Connection: close\r\n\r\n"
    . $body;
  while (length $request) {
    _wait($socket, 'w', $deadline, 'send');
    my $sent = syswrite($socket, $request);
    if (!defined $sent) {
      next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
      die "send: $!\n";
    }
    substr($request, 0, $sent, '');
  }
  my $reply = '';
  while (1) {
    last if _complete(\$reply);
    _wait($socket, 'r', $deadline, 'reply');
    my $read = sysread($socket, $reply, 16384, length $reply);
    if (!defined $read) {
      next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
      die "receive: $!\n";
    }
    last if $read == 0;
    die "reply larger than " . MAX_REPLY . " bytes\n" if length($reply) > MAX_REPLY;
  }
  close($socket);
  return _decode_http($reply);
}

sub _wait {
  my ($socket, $mode, $deadline, $what) = @_;
  while (1) {
    my $remaining = $deadline - _now();
    die "timeout ($what)\n" if $remaining <= 0;
    my $vec = '';
    vec($vec, fileno($socket), 1) = 1;
    my $ready = $mode eq 'r'
      ? select(my $r = $vec, undef, undef, $remaining)
      : select(undef, my $w = $vec, my $e = $vec, $remaining);
    return if $ready > 0;
    die "select: $!\n" if $ready < 0 && $! != EINTR;
  }
}

# True once the reply holds the headers and the whole Content-Length body.
sub _complete {
  my ($reply) = @_;
  my $end = index($$reply, "\r\n\r\n");
  return 0 if $end < 0;
  my $head = substr($$reply, 0, $end);
  return 0 if $head !~ /^Content-Length:[ \t]*(\d+)[ \t]*\r?$/mi;
  return length($$reply) - $end - 4 >= $1;
}

sub _decode_http {
  my ($reply) = @_;
  my $end = index($reply, "\r\n\r\n");
  die "truncated reply\n" if $end < 0;
  my $head = substr($reply, 0, $end);
  my $body = substr($reply, $end + 4);
  die "not HTTP\n" if $head !~ m{^HTTP/1\.[01] (\d{3})};
  my $status = $1 + 0;
  if ($head =~ /^Transfer-Encoding:[ \t]*chunked/mi) {
    my $decoded = '';
    while ($body =~ s/^0*([0-9A-Fa-f]+)[^\r\n]*\r\n//) {
      # More digits than any reply (MAX_REPLY) needs: hex() would warn of an overflow.
      die "truncated chunk\n" if length($1) > 8;
      my $size = hex($1);
      last if $size == 0;
      die "truncated chunk\n" if length($body) < $size + 2;
      $decoded .= substr($body, 0, $size);
      substr($body, 0, $size + 2, '');
    }
    $body = $decoded;
  } elsif ($head =~ /^Content-Length:[ \t]*(\d+)[ \t]*\r?$/mi) {
    die "truncated body\n" if length($body) < $1;
    $body = substr($body, 0, $1);
  }
  return ($status, $body);
}

1;
