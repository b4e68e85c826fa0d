def send_invitation(invitation, token): raise NotImplementedError
def send_meeting_update(meeting): raise NotImplementedError
def send_meeting_cancellation(meeting): raise NotImplementedError
