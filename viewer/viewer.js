// Reference operator viewer: MQTT over WebSocket for signalling, WebRTC for the picture.
// Flow (docs/protocol.md, section 6): publish {type:"request", requestId, grant} on tk/<id>/view/request;
// the device answers on tk/<id>/view/answer with a decision, then (if granted) an SDP offer; we answer
// and trickle ICE candidates both ways; {type:"ended"} closes the look. No audio, nothing recorded.
// When served by the demo (scripts/demo.ts), config.json fills the form and /grant signs a demo grant.
// A look reaches only this console: before a grant is issued, the console makes its own DTLS certificate
// (RTCPeerConnection.generateCertificate) and a hang-up secret, and the central service signs their
// fingerprint (`fp`) and the secret's SHA-256 (`hup`) into the grant. The device gives the picture only
// to the certificate the grant names and takes a hang-up only with the secret. The page shows both
// values under "This console" so an integrator can see what goes into the grant.
/* global mqtt */

const $ = (id) => document.getElementById(id);

const viewer = {
  state: 'idle',
  reason: undefined,
  requestId: undefined,
  sessionId: undefined,
  pc: undefined,
  client: undefined,
  texts: { refusal: {}, ended: {} },
  demo: false,
  /** This console's identity for the next look: { certificate, secret, holder: { fp, hup } }. */
  identity: undefined,
  holder: undefined,
};
window.tkViewer = viewer;

function show(state, text, reason) {
  viewer.state = state;
  viewer.reason = reason;
  $('state').dataset.state = state;
  $('state').textContent = text;
  $('reason').textContent = reason ?? '';
  $('hangup').disabled = !['granted', 'connecting', 'streaming'].includes(state);
  $('look').disabled = ['requesting', 'granted', 'connecting', 'streaming'].includes(state);
}

function explain(kind, reason) {
  return viewer.texts[kind][reason] ?? `reason: ${reason}`;
}

function topics() {
  const device = $('device').value.trim();
  return { request: `tk/${device}/view/request`, answer: `tk/${device}/view/answer` };
}

function send(message) {
  viewer.client.publish(topics().request, JSON.stringify({ schemaVersion: 2, ...message }), { qos: 1 });
}

const base64url = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');

/** A fresh certificate and hang-up secret: what the next grant must name. */
async function newIdentity() {
  const certificate = await RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256' });
  const fingerprint = certificate.getFingerprints().find((f) => f.algorithm === 'sha-256');
  const secret = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const hup = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(secret)));
  viewer.identity = { certificate, secret };
  viewer.holder = { fp: fingerprint.value.toUpperCase(), hup };
  $('holder').textContent = `fp ${viewer.holder.fp} · hup ${viewer.holder.hup}`;
}

function closePeer() {
  if (viewer.pc) viewer.pc.close();
  viewer.pc = undefined;
  const video = $('video');
  const stream = video.srcObject;
  if (stream) for (const track of stream.getTracks()) track.stop();
  video.srcObject = null;
}

function connect() {
  if (viewer.client) return Promise.resolve(viewer.client);
  return new Promise((resolve, reject) => {
    const client = mqtt.connect($('broker').value.trim(), {
      username: $('username').value,
      password: $('password').value,
      clientId: `viewer-${crypto.randomUUID()}`,
      reconnectPeriod: 2000,
      connectTimeout: 8000,
    });
    client.once('connect', () => {
      client.subscribe(topics().answer, { qos: 1 }, (error) => {
        if (error) reject(error);
        else {
          viewer.client = client;
          resolve(client);
        }
      });
    });
    client.once('error', (error) => {
      if (!viewer.client) {
        client.end(true);
        reject(error);
      }
    });
    client.on('message', (_topic, payload) => {
      let message;
      try {
        message = JSON.parse(new TextDecoder().decode(payload));
      } catch {
        return;
      }
      onMessage(message).catch((error) => console.error('viewer:', error));
    });
  });
}

async function onMessage(message) {
  switch (message.type) {
    case 'decision':
      if (message.requestId !== viewer.requestId) return;
      if (message.decision === 'granted') {
        viewer.sessionId = message.sessionId;
        show('granted', 'Granted: connecting to the camera…');
      } else {
        show('refused', 'Refused', explain('refusal', message.reason));
      }
      return;
    case 'offer':
      if (message.requestId !== viewer.requestId) return;
      viewer.sessionId = message.sessionId;
      await answer(message);
      return;
    case 'candidate':
      if (message.sessionId !== viewer.sessionId || !viewer.pc) return;
      if (message.candidate.candidate) await viewer.pc.addIceCandidate(message.candidate);
      return;
    case 'ended':
      if (message.sessionId !== viewer.sessionId) return;
      closePeer();
      show('ended', 'The look has ended', explain('ended', message.reason));
      viewer.sessionId = undefined;
      // The next look gets a new grant, so a new identity: a secret is never sent twice.
      await newIdentity();
      return;
    default:
      return;
  }
}

async function answer(offer) {
  closePeer();
  const sessionId = offer.sessionId;
  // With a TURN relay in the grant, relay only: neither side learns the other's address.
  const ice = viewer.ice ?? [];
  const relay = ice.some((server) => /^turns?:/.test(server.urls));
  const pc = new RTCPeerConnection({
    iceServers: ice,
    iceTransportPolicy: relay ? 'relay' : 'all',
    certificates: [viewer.identity.certificate],
  });
  viewer.pc = pc;
  show('connecting', 'Connecting the video…');
  pc.onicecandidate = (event) => {
    if (event.candidate?.candidate)
      send({ type: 'candidate', sessionId, candidate: event.candidate.toJSON() });
  };
  pc.ontrack = (event) => {
    $('video').srcObject = event.streams[0] ?? new MediaStream([event.track]);
  };
  pc.onconnectionstatechange = () => {
    if (pc !== viewer.pc) return;
    if (pc.connectionState === 'connected') show('streaming', 'Looking in');
    if (pc.connectionState === 'failed') show('failed', 'The video connection failed');
  };
  await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
  const local = await pc.createAnswer();
  await pc.setLocalDescription(local);
  send({ type: 'answer', sessionId, sdp: pc.localDescription.sdp });
}

/** The look's STUN/TURN servers from the grant's `ice` claim: the console uses the device's relay. */
function iceOf(grant) {
  try {
    const claims = JSON.parse(atob(grant.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return Array.isArray(claims.ice) ? claims.ice : [];
  } catch {
    return [];
  }
}

async function look() {
  try {
    show('requesting', 'Asking the device…');
    if (!$('grant').value.trim() && viewer.demo) {
      const query = new URLSearchParams(viewer.holder).toString();
      const response = await fetch(`grant?${query}`, { method: 'POST', headers: { 'x-demo': '1' } });
      $('grant').value = (await response.json()).grant;
    }
    await connect();
    viewer.requestId = `req-${crypto.randomUUID()}`;
    viewer.sessionId = undefined;
    viewer.ice = iceOf($('grant').value.trim());
    send({ type: 'request', requestId: viewer.requestId, grant: $('grant').value.trim() });
    // A grant is used at most once: clear it so the next look fetches or needs a new one.
    $('grant').value = '';
    setTimeout(() => {
      if (viewer.state === 'requesting')
        show('no-answer', 'No answer from the device', 'send a person if the check is due');
    }, 10_000);
  } catch (error) {
    show('error', 'Cannot reach the broker', String(error));
  }
}

function hangup() {
  if (viewer.sessionId) {
    const { secret } = viewer.identity;
    send({ type: 'hangup', requestId: viewer.requestId, sessionId: viewer.sessionId, secret });
  }
}

async function init() {
  try {
    const texts = await fetch('reasons.json');
    if (texts.ok) viewer.texts = await texts.json();
  } catch {}
  try {
    const response = await fetch('config.json');
    if (response.ok) {
      const config = await response.json();
      $('broker').value = config.brokerUrl;
      $('username').value = config.username;
      $('password').value = config.password;
      $('device').value = config.deviceId;
      viewer.demo = Boolean(config.demo);
      document.body.classList.toggle('demo-mode', viewer.demo);
    }
  } catch {}
  await newIdentity();
  $('look').onclick = () => look();
  $('hangup').onclick = () => hangup();
  $('privacy').onclick = () => fetch('privacy', { method: 'POST', headers: { 'x-demo': '1' } });
  show('idle', 'Ready');
  document.body.dataset.ready = 'true';
}

void init();
